//! The spool's layout, known here only. `state/spool/<doc_id>/` holds one
//! claimed document on its way to the hub:
//!
//! ```text
//! claim.json      what was claimed, from where, when (written last at a claim)
//! meta.toml       its sidecar, if it had one
//! files/          the dropped file, or the dropped folder's files
//! key             the content key, once sealed
//! stamps.json     each file's stamp as it was sealed
//! left_out.json   units it was addressed to but not sent to, and why
//! header          the signed header: written last, so its presence means sealed
//! content         the ciphertext (spools of older versions only)
//! ```

use std::path::{Path, PathBuf};

use gongwen_common::DocId;

use crate::unit::folders::Folders;

/// The spool entry of `doc_id`.
pub fn entry(folders: &Folders, doc_id: DocId) -> PathBuf {
    entry_in(&folders.spool, doc_id)
}

/// The entry of `doc_id` in the spool folder `spool`.
pub fn entry_in(spool: &Path, doc_id: DocId) -> PathBuf {
    spool.join(doc_id.to_string())
}

/// Whether `doc_id` is in the spool: claimed, not yet taken by the hub.
pub fn holds(folders: &Folders, doc_id: DocId) -> bool {
    entry(folders, doc_id).exists()
}

/// The documents in the spool (entries named by a document id).
pub fn ids(folders: &Folders) -> std::io::Result<Vec<DocId>> {
    let mut ids = Vec::new();
    for e in std::fs::read_dir(&folders.spool)? {
        if let Ok(id) = DocId::parse(&e?.file_name().to_string_lossy()) {
            ids.push(id);
        }
    }
    Ok(ids)
}

pub fn claim(entry: &Path) -> PathBuf {
    entry.join("claim.json")
}

pub fn sidecar(entry: &Path) -> PathBuf {
    entry.join("meta.toml")
}

pub fn files(entry: &Path) -> PathBuf {
    entry.join("files")
}

pub fn key(entry: &Path) -> PathBuf {
    entry.join("key")
}

pub fn stamps(entry: &Path) -> PathBuf {
    entry.join("stamps.json")
}

pub fn left_out(entry: &Path) -> PathBuf {
    entry.join("left_out.json")
}

pub fn header(entry: &Path) -> PathBuf {
    entry.join("header")
}

pub fn content(entry: &Path) -> PathBuf {
    entry.join("content")
}

/// Sealed: its signed header is written (the last step of sealing).
pub fn is_sealed(entry: &Path) -> bool {
    header(entry).exists()
}
