//! Where document content (ciphertext only) lives at the hub.
//!
//! ```text
//! <data_dir>/spool/<doc_id>.ct            complete, accepted content
//! <data_dir>/spool/partial/<doc_id>.part  an upload in progress
//! ```
//!
//! A file moves from `partial/` to the spool by rename after fsync, and the
//! directory is fsynced, before the store records the document as accepted.

use std::path::{Path, PathBuf};

use gongwen_common::DocId;

#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
    partial_dir: PathBuf,
}

impl Spool {
    pub fn open(data_dir: &Path) -> std::io::Result<Spool> {
        let dir = data_dir.join("spool");
        let partial_dir = dir.join("partial");
        std::fs::create_dir_all(&partial_dir)?;
        Ok(Spool { dir, partial_dir })
    }

    pub fn content(&self, doc_id: DocId) -> PathBuf {
        self.dir.join(format!("{doc_id}.ct"))
    }

    pub fn partial(&self, doc_id: DocId) -> PathBuf {
        self.partial_dir.join(format!("{doc_id}.part"))
    }

    /// Whether any content was ever stored here (a store that vanished
    /// while this holds documents must not be recreated empty).
    pub fn holds_documents(data_dir: &Path) -> bool {
        std::fs::read_dir(data_dir.join("spool"))
            .map(|mut d| {
                d.any(|e| e.is_ok_and(|e| e.path().extension().is_some_and(|x| x == "ct")))
            })
            .unwrap_or(false)
    }

    /// Documents whose complete content is in the spool.
    pub fn stored(&self) -> std::io::Result<Vec<DocId>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|x| x == "ct")
                && let Some(Ok(id)) = path.file_stem().and_then(|s| s.to_str()).map(str::parse)
            {
                out.push(id);
            }
        }
        Ok(out)
    }

    /// fsync the spool directory (after a rename into it). Blocking.
    pub fn sync_blocking(&self) -> std::io::Result<()> {
        gongwen_common::fsutil::sync_dir(&self.dir)
    }

    /// fsync the spool directory (after a rename into it).
    pub async fn sync(&self) -> std::io::Result<()> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || gongwen_common::fsutil::sync_dir(&dir))
            .await
            .map_err(std::io::Error::other)?
    }
}
