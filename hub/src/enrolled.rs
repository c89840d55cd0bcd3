//! The units the CA enrolled (`[tls] directory`): who can receive before
//! its agent ever connected, their display names and groups.
//!
//! The file is polled like the CRL (a new one is written by rename; reading
//! a few kilobytes a second is cheap and certain). One that does not verify
//! against the CA is logged and the previous one kept.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use gongwen_common::NodeId;
use gongwen_common::directory::{DirectoryEntry, UnitDirectory, newer_binding};
use tracing::{error, info};

use crate::core::Core;
use crate::polled::PolledFile;

/// One loaded directory with the groups it and hub.toml make together.
#[derive(Debug, Default)]
pub struct Enrollment {
    pub directory: UnitDirectory,
    /// hub.toml's `[groups]`, then the directory's, members in that order
    /// without repeats: a group named in both has everyone from both.
    pub groups: BTreeMap<String, Vec<NodeId>>,
}

impl Enrollment {
    pub fn new(directory: UnitDirectory, configured: &BTreeMap<String, Vec<NodeId>>) -> Self {
        Enrollment {
            groups: merge_groups(configured, &directory.groups()),
            directory,
        }
    }

    pub fn entry(&self, id: &NodeId) -> Option<&DirectoryEntry> {
        self.directory.get(id)
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
        for m in members {
            if !into.contains(m) {
                into.push(m.clone());
            }
        }
    }
    out
}

/// The current [`Enrollment`], replaced whole when the file changes.
pub type EnrolledUnits = crate::polled::Swapped<Enrollment>;

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

/// Reload the directory whenever its file changes.
pub(crate) async fn watch(
    core: Arc<Core>,
    path: std::path::PathBuf,
    ca: Vec<u8>,
    interval: Duration,
) {
    let mut file = PolledFile::new(&path, "the unit directory").await;
    loop {
        tokio::time::sleep(interval).await;
        let Some(bytes) = file.changed().await else {
            continue;
        };
        match UnitDirectory::verify(&bytes, &ca) {
            Ok(dir) => {
                info!(
                    units = dir.entries.len(),
                    "unit directory {} reloaded",
                    path.display()
                );
                core.enrolled()
                    .replace(Enrollment::new(dir, &core.config().groups));
            }
            Err(e) => error!(
                "the unit directory {} cannot be used ({e}); keeping the previous one",
                path.display()
            ),
        }
    }
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
    fn without_a_directory_only_published_keys_count() {
        let e = Enrollment::default();
        assert_eq!(e.binding_for(&id("harbin-gov"), None), None);
        assert_eq!(
            e.binding_for(&id("harbin-gov"), Some(vec![1])),
            Some(vec![1])
        );
    }
}
