//! The units the CA enrolled (`[tls] directory`): who can receive before
//! its agent ever connected, their display names and groups.
//!
//! The file is polled like the CRL (a new one is written by rename; reading
//! a few kilobytes a second is cheap and certain). One that does not verify
//! against the CA is logged and the previous one kept.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use gongwen_common::NodeId;
use gongwen_common::directory::{DirectoryEntry, UnitDirectory, newer_binding};

/// One loaded directory with the groups it and hub.toml make together,
/// and an index by unit (a lookup of a 5,000-member group asks for 5,000
/// entries).
#[derive(Debug, Default)]
pub struct Enrollment {
    pub directory: UnitDirectory,
    /// hub.toml's `[groups]`, then the directory's, members in that order
    /// without repeats: a group named in both has everyone from both.
    pub groups: BTreeMap<String, Vec<NodeId>>,
    by_id: HashMap<NodeId, usize>,
}

impl Enrollment {
    pub fn new(directory: UnitDirectory, configured: &BTreeMap<String, Vec<NodeId>>) -> Self {
        let by_id = directory
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.id.clone(), i))
            .collect();
        Enrollment {
            groups: merge_groups(configured, &directory.groups()),
            directory,
            by_id,
        }
    }

    pub fn entry(&self, id: &NodeId) -> Option<&DirectoryEntry> {
        self.by_id
            .get(id)
            .and_then(|&i| self.directory.entries.get(i))
    }

    /// The binding to hand out for `id`: the later of the one its agent
    /// published (`published`) and the one it was enrolled with.
    pub fn binding_for(&self, id: &NodeId, published: Option<Vec<u8>>) -> Option<Vec<u8>> {
        match (published, self.entry(id)) {
            (Some(p), Some(e)) => Some(newer_binding(&p, &e.binding).to_vec()),
            (Some(p), None) => Some(p),
            (None, Some(e)) => Some(e.binding.clone()),
            (None, None) => None,
        }
    }
}

/// Groups from two sources, members of a group named in both joined.
pub fn merge_groups(
    first: &BTreeMap<String, Vec<NodeId>>,
    second: &BTreeMap<String, Vec<NodeId>>,
) -> BTreeMap<String, Vec<NodeId>> {
    let mut out = first.clone();
    for (name, members) in second {
        let into = out.entry(name.clone()).or_default();
        let mut there: HashSet<NodeId> = into.iter().cloned().collect();
        for m in members {
            if there.insert(m.clone()) {
                into.push(m.clone());
            }
        }
    }
    out
}

/// The current [`Enrollment`], replaced whole when the file changes.
pub type EnrolledUnits = crate::state::polled::Swapped<Enrollment>;

/// Read and verify the directory file, in words for the administrator.
pub fn load(path: &Path, ca: &[u8]) -> Result<UnitDirectory, String> {
    let bytes = std::fs::read(path).map_err(|e| {
        format!(
            "cannot read the unit directory {} (tls.directory): {e}",
            path.display()
        )
    })?;
    UnitDirectory::verify(&bytes, ca).map_err(|e| format!("{}: {e}", path.display()))
}

/// The file in the data folder that remembers when the newest directory
/// this hub used was issued, so that an older one is refused after a
/// restart too.
pub const ISSUED_MARK: &str = "directory.issued";

/// Whether a directory issued at `candidate_ms` may replace one issued at
/// `current_ms`: never an older one. The CA signs each directory with the
/// time it wrote it; an older signed directory is still a valid signature,
/// and putting it back (by mistake, or to bring back a unit's old key)
/// would roll the register of units back. Pure.
pub fn may_replace(current_ms: i64, candidate_ms: i64) -> Result<(), String> {
    if candidate_ms < current_ms {
        let when = |ms: i64| {
            time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
                .map(gongwen_common::timefmt::rfc3339)
                .unwrap_or_else(|_| ms.to_string())
        };
        return Err(format!(
            "it was issued at {}, before the directory this hub already used (issued at {}): an older directory is refused (write a new one with gongwen-certs enroll)",
            when(candidate_ms),
            when(current_ms)
        ));
    }
    Ok(())
}

/// When the newest directory this hub used was issued (0 if none).
pub fn issued_mark(data_dir: &Path) -> i64 {
    std::fs::read_to_string(data_dir.join(ISSUED_MARK))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

/// Remember that a directory issued at `issued_ms` is in use.
pub fn set_issued_mark(data_dir: &Path, issued_ms: i64) -> std::io::Result<()> {
    if issued_ms > issued_mark(data_dir) {
        gongwen_common::fsutil::write_atomic(
            &data_dir.join(ISSUED_MARK),
            issued_ms.to_string().as_bytes(),
            0o600,
        )?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn id(s: &str) -> NodeId {
        NodeId::parse(s).unwrap()
    }

    #[test]
    fn a_group_named_twice_has_everyone_once() {
        let mut a = BTreeMap::new();
        a.insert("市级".to_owned(), vec![id("harbin-gov"), id("daqing-gov")]);
        a.insert("省直".to_owned(), vec![id("prov-edu")]);
        let mut b = BTreeMap::new();
        b.insert("市级".to_owned(), vec![id("daqing-gov"), id("qiqihar-gov")]);
        b.insert("油田".to_owned(), vec![id("daqing-gov")]);
        let m = merge_groups(&a, &b);
        assert_eq!(
            m["市级"],
            vec![id("harbin-gov"), id("daqing-gov"), id("qiqihar-gov")]
        );
        assert_eq!(m["省直"], vec![id("prov-edu")]);
        assert_eq!(m["油田"], vec![id("daqing-gov")]);
    }

    #[test]
    fn an_older_directory_never_replaces_a_newer_one() {
        assert!(may_replace(1_000, 2_000).is_ok());
        assert!(may_replace(1_000, 1_000).is_ok(), "the same one again");
        let e = may_replace(2_000_000, 1_000_000).unwrap_err();
        assert!(e.contains("older directory is refused"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(issued_mark(dir.path()), 0);
        set_issued_mark(dir.path(), 5).unwrap();
        set_issued_mark(dir.path(), 3).unwrap();
        assert_eq!(issued_mark(dir.path()), 5, "the mark only moves forward");
    }

    #[test]
    fn without_a_directory_only_published_keys_count() {
        let e = Enrollment::default();
        assert_eq!(e.binding_for(&id("harbin-gov"), None), None);
        assert_eq!(
            e.binding_for(&id("harbin-gov"), Some(vec![1])),
            Some(vec![1])
        );
    }
}
