//! The units and groups this unit can send to, as the hub last said, and
//! what makes the folder drop explain itself: an `outbox/<id>/` folder for
//! every unit and group, and `outbox/单位名录.txt` naming them. Folders are
//! only ever made, never removed (a clerk may have put something in one).

use std::path::Path;
use std::sync::{Arc, Mutex};

use gongwen_common::NodeId;
use gongwen_common::fsutil::write_atomic;

/// The list of units at the top of the outbox (not a drop).
pub const DIRECTORY_FILE: &str = "单位名录.txt";

pub use gongwen_common::supervision::{AddressBook, AddressEntry, DeadlineSpans, GroupEntry};

/// The outbox folders: every unit but `me`, and every group.
pub fn folder_names(book: &AddressBook, me: &NodeId) -> Vec<String> {
    let mut names: Vec<String> = book
        .units
        .iter()
        .filter(|u| &u.id != me)
        .map(|u| u.id.to_string())
        .chain(book.groups.iter().map(|g| g.name.clone()))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// `单位名录.txt`: what each folder sends to.
pub fn list_text(book: &AddressBook, me: &NodeId) -> String {
    let mut out = String::from(
        "单位名录 — 把文件放进 outbox/<编号>/ 即发给该单位或该组。\n\
         先写好同名的 <文件名>.meta.toml（标题、文号等），或放入一个文件夹（正文命名为“正文”）。\n\n\
         编号\t单位名称\t所在组\n",
    );
    let mut units: Vec<&AddressEntry> = book.units.iter().filter(|u| &u.id != me).collect();
    units.sort_by(|a, b| a.id.cmp(&b.id));
    // Each unit's groups, in the book's order: one pass over the members
    // (10,000 units in a group of all of them).
    let mut groups_of: std::collections::HashMap<&NodeId, Vec<&str>> =
        std::collections::HashMap::new();
    for g in &book.groups {
        for m in &g.members {
            groups_of.entry(m).or_default().push(g.name.as_str());
        }
    }
    for u in units {
        let groups = groups_of.get(&u.id).map(Vec::as_slice).unwrap_or_default();
        out.push_str(&format!(
            "{}\t{}{}\t{}\n",
            u.id,
            u.name.as_deref().unwrap_or("-"),
            if u.revoked {
                "（证书已吊销，不能收文）"
            } else {
                ""
            },
            groups.join(", ")
        ));
    }
    if !book.groups.is_empty() {
        out.push_str("\n组\t成员\n");
        for g in &book.groups {
            let members: Vec<&str> = g.members.iter().map(NodeId::as_str).collect();
            out.push_str(&format!("{}\t{}\n", g.name, members.join(", ")));
        }
    }
    out
}

/// Make the missing outbox folders and write the list if it changed.
/// Blocking.
pub fn apply(outbox: &Path, dir: &AddressBook, me: &NodeId) -> std::io::Result<()> {
    std::fs::create_dir_all(outbox)?;
    for name in folder_names(dir, me) {
        let path = outbox.join(&name);
        if !path.exists() {
            std::fs::create_dir(&path)?;
            crate::unit::folders::clerks_drop_here(&path)?;
        }
    }
    let text = list_text(dir, me);
    let list = outbox.join(DIRECTORY_FILE);
    if std::fs::read_to_string(&list).ok().as_deref() != Some(text.as_str()) {
        write_atomic(&list, text.as_bytes(), 0o644)?;
    }
    Ok(())
}

/// Units by name: what a clerk reads instead of an id, and the ids a
/// clerk means by typing part of a name (大庆 → daqing-gov, daqing-edu).
/// Built once per directory the hub sends (10,000 units: one map).
#[derive(Debug, Default)]
pub struct UnitNames {
    by_id: std::collections::HashMap<String, String>,
}

impl UnitNames {
    pub fn of(book: &AddressBook) -> UnitNames {
        UnitNames {
            by_id: book
                .units
                .iter()
                .map(|u| {
                    let id = u.id.to_string();
                    (id.clone(), u.name.clone().unwrap_or(id))
                })
                .collect(),
        }
    }

    /// Whether the directory lists the unit `id`.
    pub fn knows(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    /// The unit's 单位名称, or its id when the directory has no name for it.
    pub fn show<'a>(&'a self, id: &'a str) -> &'a str {
        self.by_id.get(id).map(String::as_str).unwrap_or(id)
    }

    /// `哈尔滨市人民政府、大庆市人民政府` for a list of ids.
    pub fn list<'a>(&self, ids: impl IntoIterator<Item = &'a str>) -> String {
        ids.into_iter()
            .map(|id| self.show(id))
            .collect::<Vec<_>>()
            .join("、")
    }

    /// The ids of the units whose id or name contains `typed` (ignoring
    /// case and surrounding spaces), sorted; `typed` itself when it names
    /// a unit the directory does not (another domain's, or before the
    /// first directory).
    pub fn matching(&self, typed: &str) -> Vec<String> {
        let typed = typed.trim();
        if typed.is_empty() {
            return Vec::new();
        }
        let lower = typed.to_lowercase();
        let mut ids: Vec<String> = self
            .by_id
            .iter()
            .filter(|(id, name)| id.to_lowercase().contains(&lower) || name.contains(typed))
            .map(|(id, _)| id.clone())
            .collect();
        if ids.is_empty() {
            ids.push(typed.to_owned());
        }
        ids.sort();
        ids
    }
}

/// The directory as last heard from the hub (none before the first
/// answer), shared by the session that asks and the console that shows it.
#[derive(Debug, Default)]
pub struct Known {
    current: Mutex<Option<(Arc<AddressBook>, Arc<UnitNames>)>>,
}

impl Known {
    pub fn get(&self) -> Option<Arc<AddressBook>> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|(book, _)| book.clone())
    }

    /// The units' names as last heard (none known before the first
    /// directory: every id shows as itself).
    pub fn names(&self) -> Arc<UnitNames> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|(_, names)| names.clone())
            .unwrap_or_default()
    }

    pub fn set(&self, dir: AddressBook) {
        let names = Arc::new(UnitNames::of(&dir));
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some((Arc::new(dir), names));
    }
}

impl Known {
    /// Ask the hub for the directory over the live connection; keep it,
    /// and make the outbox folders and `单位名录.txt` from it. (The edge
    /// of this module: the rest is plain values and one folder walk.)
    pub async fn refresh(
        &self,
        link: &crate::unit::hub_link::Link,
        me: &crate::unit::identity::Identity,
    ) -> Result<Arc<AddressBook>, String> {
        use gongwen_common::supervision::{DirectoryAnswer, Query};
        let held = self.get();
        let since = held.as_ref().and_then(|b| b.version.clone());
        let dir = match link.query(&Query::Directory { since }).await? {
            DirectoryAnswer::Book(book) => book,
            // Nothing changed: no folder to make, no list to write.
            DirectoryAnswer::Unchanged { .. } => {
                return held.ok_or_else(|| "no directory".to_owned());
            }
        };
        let (outbox, node, d) = (
            me.folders().outbox.clone(),
            me.node_id().clone(),
            dir.clone(),
        );
        match tokio::task::spawn_blocking(move || apply(&outbox, &d, &node)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!("could not make the outbox folders from the directory: {e}")
            }
            Err(e) => tracing::warn!("could not make the outbox folders from the directory: {e}"),
        }
        self.set(dir);
        self.get().ok_or_else(|| "no directory".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> NodeId {
        NodeId::parse(s).unwrap()
    }

    fn sample() -> AddressBook {
        AddressBook {
            version: None,
            units: vec![
                AddressEntry {
                    id: id("harbin-gov"),
                    name: Some("哈尔滨市人民政府".into()),
                    revoked: false,
                },
                AddressEntry {
                    id: id("daqing-gov"),
                    name: None,
                    revoked: true,
                },
                AddressEntry {
                    id: id("prov-gov"),
                    name: Some("省政府".into()),
                    revoked: false,
                },
            ],
            groups: vec![GroupEntry {
                name: "cities".into(),
                members: vec![id("harbin-gov"), id("daqing-gov")],
            }],
            deadlines: Some(DeadlineSpans {
                normal: 86_400,
                urgent: 4 * 3600,
                extra_urgent: 3600,
            }),
        }
    }

    #[test]
    fn units_show_by_name_and_are_found_by_part_of_name_or_id() {
        let names = UnitNames::of(&sample());
        assert_eq!(names.show("harbin-gov"), "哈尔滨市人民政府");
        // No name in the directory, or not in it at all: the id.
        assert_eq!(names.show("daqing-gov"), "daqing-gov");
        assert_eq!(names.show("gov@national"), "gov@national");
        assert_eq!(
            names.list(["prov-gov", "harbin-gov"]),
            "省政府、哈尔滨市人民政府"
        );
        assert_eq!(names.matching("哈尔滨"), vec!["harbin-gov".to_owned()]);
        assert_eq!(names.matching(" 省政府 "), vec!["prov-gov".to_owned()]);
        assert_eq!(names.matching("GOV").len(), 3, "ids ignore case");
        assert_eq!(names.matching("gov@harbin"), vec!["gov@harbin".to_owned()]);
        assert!(names.matching("  ").is_empty());
    }

    #[test]
    fn folders_are_made_for_every_other_unit_and_group_and_none_is_removed() {
        let d = tempfile::tempdir().unwrap();
        let outbox = d.path().join("outbox");
        std::fs::create_dir_all(outbox.join("old-unit")).unwrap();
        std::fs::write(outbox.join("old-unit").join("draft.txt"), b"keep").unwrap();
        apply(&outbox, &sample(), &id("prov-gov")).unwrap();
        for name in ["harbin-gov", "daqing-gov", "cities", "old-unit"] {
            assert!(outbox.join(name).is_dir(), "{name}");
        }
        assert!(
            !outbox.join("prov-gov").exists(),
            "a folder to send to oneself"
        );
        assert_eq!(
            std::fs::read(outbox.join("old-unit").join("draft.txt")).unwrap(),
            b"keep"
        );
        let text = std::fs::read_to_string(outbox.join(DIRECTORY_FILE)).unwrap();
        assert!(
            text.contains("harbin-gov\t哈尔滨市人民政府\tcities"),
            "{text}"
        );
        assert!(text.contains("cities\tharbin-gov, daqing-gov"), "{text}");
        assert_eq!(sample().name_of(&id("harbin-gov")), "哈尔滨市人民政府");
        assert_eq!(sample().name_of(&id("daqing-gov")), "daqing-gov");
        assert!(sample().knows("cities") && !sample().knows("nobody"));
        let accepted_ms = 1_800_000_000_000;
        assert_eq!(
            sample().default_deadline(gongwen_common::envelope::Urgency::Urgent, accepted_ms),
            Some(1_800_000_000 + 4 * 3600)
        );
    }
}
