//! What a file looked like when it was sealed, to tell later, cheaply,
//! whether it is still the file that was sealed.
//!
//! The kernel moves a file's change time (`ctime`) on every write and on
//! every change of its attributes, and no program can set it back; with
//! the size, the modification time and the inode, an unchanged stamp
//! means unchanged bytes. A changed stamp does not mean changed bytes (a
//! `touch`, a `chmod`): the digest decides then ([`crate::outgoing::send`]).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// One file's stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
    pub dev: u64,
    pub ino: u64,
}

impl Stamp {
    pub fn of(meta: &std::fs::Metadata) -> Stamp {
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        Stamp {
            size: meta.len(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }

    pub fn of_path(path: &Path) -> std::io::Result<Stamp> {
        std::fs::metadata(path).map(|m| Stamp::of(&m))
    }

    /// What differs from `was`, in a clerk's words, if anything does.
    pub fn changed_from(&self, was: &Stamp) -> Option<String> {
        if self.dev != was.dev || self.ino != was.ino {
            Some("文件被另一个文件替换".into())
        } else if self.size != was.size {
            Some(format!("大小由 {} 字节变为 {} 字节", was.size, self.size))
        } else if self.mtime_ns != was.mtime_ns || self.ctime_ns != was.ctime_ns {
            Some("内容或属性被改动".into())
        } else {
            None
        }
    }
}

/// The stamps of a sealed document's files, by name, as kept in its spool
/// folder.
pub type Stamps = Vec<(String, Stamp)>;

/// What changed among the files in `files_dir` since `stamps` were taken:
/// each changed file's name and what changed. A file that is gone counts
/// as changed.
pub fn changed_files(files_dir: &Path, stamps: &Stamps) -> Vec<(String, String)> {
    stamps
        .iter()
        .filter_map(|(name, was)| {
            let why = match Stamp::of_path(&files_dir.join(name)) {
                Ok(now) => now.changed_from(was)?,
                Err(e) => format!("文件不见了（{e}）"),
            };
            Some((name.clone(), why))
        })
        .collect()
}

/// Read the stamps kept in a spool folder (none for a document sealed
/// before they were kept).
pub fn read(dir: &Path) -> Option<Stamps> {
    let bytes = std::fs::read(crate::outgoing::spool::stamps(dir)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_write_or_a_replacement_changes_the_stamp_and_reading_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("正文.txt");
        std::fs::write(&path, b"first").unwrap();
        let stamps: Stamps = vec![("正文.txt".into(), Stamp::of_path(&path).unwrap())];
        let _ = std::fs::read(&path).unwrap();
        assert!(changed_files(dir.path(), &stamps).is_empty());
        // Appended to: the size says so.
        use std::io::Write;
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b" and more")
            .unwrap();
        let changed = changed_files(dir.path(), &stamps);
        assert_eq!(changed.len(), 1);
        assert!(
            changed[0].1.contains("大小由 5 字节变为 14 字节"),
            "{changed:?}"
        );
        // Replaced by another file of the same size.
        let other = dir.path().join("other");
        std::fs::write(&other, b"first").unwrap();
        std::fs::rename(&other, &path).unwrap();
        assert!(
            changed_files(dir.path(), &stamps)[0]
                .1
                .contains("被另一个文件替换")
        );
        std::fs::remove_file(&path).unwrap();
        assert!(
            changed_files(dir.path(), &stamps)[0]
                .1
                .contains("文件不见了")
        );
    }
}
