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
        "单位名录 (directory of units) — 把文件放进 outbox/<编号>/ 即发给该单位或该组。\n\
         Put a file in outbox/<id>/ to send it to that unit or group.\n\
         Write the sidecar <file>.meta.toml first, or drop a folder.\n\n\
         编号 (id)\t单位名称 (name)\t所在组 (groups)\n",
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
                "（证书已吊销，不能收文 / revoked: cannot receive）"
            } else {
                ""
            },
            groups.join(", ")
        ));
    }
    if !book.groups.is_empty() {
        out.push_str("\n组 (group)\t成员 (members)\n");
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

/// The directory as last heard from the hub (none before the first
/// answer), shared by the session that asks and the console that shows it.
#[derive(Debug, Default)]
pub struct Known {
    current: Mutex<Option<Arc<AddressBook>>>,
}

impl Known {
    pub fn get(&self) -> Option<Arc<AddressBook>> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn set(&self, dir: AddressBook) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(dir));
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
