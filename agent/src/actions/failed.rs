//! What could not be sent, as a clerk deals with it: each document in
//! `failed/` with whom it was for and why, sent again (重新发送) once the
//! clerk has fixed what can be fixed — its recipients, title, deadline —
//! or deleted (删除). The console's 问题 page calls these; a clerk with
//! the folders may still move the file back into the outbox by hand.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use gongwen_common::DocId;

use crate::outgoing::draft::{self, Sidecar};
use crate::outgoing::outbox::{ERROR_SUFFIX, SIDECAR_SUFFIX, SendRequest, sidecar_path};
use crate::unit::folders::Folders;
use crate::unit::store::FailedRecord;

/// One document (a file or a folder) in `failed/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedItem {
    /// Its name in `failed/`.
    pub name: String,
    pub is_folder: bool,
    /// The document it was to be, when it got as far as a claim.
    pub doc_id: Option<DocId>,
    pub title: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    /// Why it was not sent, in the words written beside it.
    pub reason: String,
    pub when_ms: Option<i64>,
}

/// What the clerk changed before sending it again; empty fields keep what
/// the document had.
#[derive(Debug, Clone, Default)]
pub struct Fix {
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub title: String,
    pub deadline: String,
}

/// The reason part of a `.error.txt` (between 原因 and 怎么办), or all of
/// it when it is not in that shape (written by an older agent).
fn reason_of(text: &str) -> String {
    let body = text
        .split_once("原因：\n")
        .map(|(_, rest)| rest)
        .unwrap_or(text);
    body.split_once("\n\n怎么办：")
        .map(|(reason, _)| reason)
        .unwrap_or(body)
        .trim()
        .to_owned()
}

fn sidecar_of(entry: &Path) -> Option<Sidecar> {
    let path = sidecar_path(entry);
    let text = std::fs::read_to_string(&path).ok()?;
    draft::parse_sidecar(&path.file_name()?.to_string_lossy(), &text).ok()
}

fn toml_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn modified_ms(p: &Path) -> Option<i64> {
    let t = std::fs::metadata(p).and_then(|m| m.modified()).ok()?;
    Some(t.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_millis() as i64)
}

/// How many documents wait in `failed/` (each has its `.error.txt`).
/// Blocking.
pub fn count(folders: &Folders) -> usize {
    std::fs::read_dir(&folders.failed)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(ERROR_SUFFIX))
                .count()
        })
        .unwrap_or(0)
}

/// Every document in `failed/`, newest first, at most `limit`; `records`
/// are the failures the store kept (whom a claimed document was for).
/// Blocking.
pub fn list(folders: &Folders, records: &[FailedRecord], limit: usize) -> Vec<FailedItem> {
    let Ok(entries) = std::fs::read_dir(&folders.failed) else {
        return Vec::new();
    };
    let mut items: Vec<FailedItem> = entries
        .flatten()
        .filter_map(|e| {
            let file = e.file_name().to_string_lossy().into_owned();
            let name = file.strip_suffix(ERROR_SUFFIX)?.to_owned();
            let entry = folders.failed.join(&name);
            // The latest failure of that name (a name is reused once freed).
            let record = records
                .iter()
                .filter(|r| r.name == name)
                .max_by_key(|r| r.failed_ms);
            let sidecar = sidecar_of(&entry);
            let (to, cc) = match (record, &sidecar) {
                (Some(r), _) => (r.to.clone(), r.cc.clone()),
                (None, Some(sc)) => (sc.to.clone().into_vec(), sc.cc.clone().into_vec()),
                (None, None) => (Vec::new(), Vec::new()),
            };
            let title = sidecar
                .as_ref()
                .and_then(|sc| sc.title.clone())
                .filter(|t| !t.trim().is_empty())
                .unwrap_or_else(|| draft::default_title(&name));
            let reason = match record {
                Some(r) => r.reason.clone(),
                None => reason_of(&std::fs::read_to_string(e.path()).unwrap_or_default()),
            };
            Some(FailedItem {
                is_folder: entry.is_dir(),
                doc_id: record.map(|r| r.doc_id),
                when_ms: modified_ms(&e.path()),
                name,
                title,
                to,
                cc,
                reason,
            })
        })
        .collect();
    items.sort_by_key(|i| std::cmp::Reverse(i.when_ms));
    items.truncate(limit);
    items
}

/// Whether `name` can name a document in `failed/`: one plain name, not
/// a reason or sidecar file.
fn plain(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
        && !name.ends_with(ERROR_SUFFIX)
        && !name.ends_with(SIDECAR_SUFFIX)
}

fn gone(name: &str) -> String {
    format!("“问题”中没有 {name}：可能已经重新发送或删除。")
}

/// `name` as a document in `failed/` that is there.
fn entry(folders: &Folders, name: &str) -> Result<PathBuf, String> {
    let path = folders.failed.join(name);
    if plain(name) && std::fs::symlink_metadata(&path).is_ok() {
        Ok(path)
    } else {
        Err(gone(name))
    }
}

/// The files of a failed document, the main text (正文) first.
fn files_of(path: &Path, sidecar: Option<&Sidecar>) -> Result<Vec<PathBuf>, String> {
    if !path.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| format!("无法读取文件夹：{e}"))?
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    let named = |p: &PathBuf| p.file_name().map(|n| n.to_string_lossy().into_owned());
    let main = match sidecar.and_then(|s| s.main.as_deref()) {
        Some(m) => files.iter().position(|p| named(p).as_deref() == Some(m)),
        None => files
            .iter()
            .position(|p| named(p).is_some_and(|n| n.starts_with("正文"))),
    };
    let Some(main) = main else {
        return Err(draft::DraftError::NoMainText.to_string());
    };
    let m = files.remove(main);
    files.insert(0, m);
    Ok(files)
}

/// The request that sends a failed document again with the clerk's
/// fixes, and its files. Blocking.
pub fn resend_request(folders: &Folders, name: &str, fix: &Fix) -> Result<SendRequest, String> {
    let path = entry(folders, name)?;
    let sc = sidecar_of(&path);
    let to = if fix.to.is_empty() {
        sc.as_ref()
            .map(|s| s.to.clone().into_vec())
            .unwrap_or_default()
    } else {
        fix.to.clone()
    };
    if to.is_empty() {
        return Err("请填写主送单位。".into());
    }
    let kept = |f: fn(&Sidecar) -> Option<String>| sc.as_ref().and_then(f);
    let fixed = |v: &str| Some(v.trim().to_owned()).filter(|v| !v.is_empty());
    let id = |v: Option<String>| v.and_then(|s| DocId::parse(s.trim()).ok());
    Ok(SendRequest {
        files: files_of(&path, sc.as_ref())?,
        to,
        cc: if fix.cc.is_empty() {
            sc.as_ref()
                .map(|s| s.cc.clone().into_vec())
                .unwrap_or_default()
        } else {
            fix.cc.clone()
        },
        title: fixed(&fix.title).or_else(|| kept(|s| s.title.clone())),
        doc_number: kept(|s| s.doc_number.clone()),
        doc_type: kept(|s| s.doc_type.clone()),
        urgency: kept(|s| s.urgency.clone()),
        deadline: fixed(&fix.deadline).or_else(|| kept(|s| s.deadline.as_ref().map(toml_text))),
        note: kept(|s| s.note.clone()),
        operator: kept(|s| s.operator.clone()),
        phone: kept(|s| s.phone.clone()),
        reply: kept(|s| s.reply.clone()),
        reply_by: kept(|s| s.reply_by.as_ref().map(toml_text)),
        in_reply_to: id(kept(|s| s.in_reply_to.clone())),
        decision: kept(|s| s.decision.clone()),
        supersedes: id(kept(|s| s.supersedes.clone())),
        forward_of: id(kept(|s| s.forward_of.clone())),
        elements: match &sc {
            Some(sc) => draft::elements_of(sc).map_err(|e| e.to_string())?,
            None => Default::default(),
        },
    })
}

/// 删除: a failed document and what was written beside it. Blocking.
pub fn remove(folders: &Folders, name: &str) -> Result<(), String> {
    let path = entry(folders, name)?;
    let io = |e: std::io::Error| format!("无法删除 {name}：{e}");
    if path.is_dir() {
        std::fs::remove_dir_all(&path).map_err(io)?;
    } else {
        std::fs::remove_file(&path).map_err(io)?;
    }
    clear_beside(folders, name)
}

/// What is left once a failed document's files went into a new claim:
/// the reason, the sidecar and the emptied folder. Blocking.
pub fn clear_beside(folders: &Folders, name: &str) -> Result<(), String> {
    if !plain(name) {
        return Err(gone(name));
    }
    let path = folders.failed.join(name);
    let io = |e: std::io::Error| format!("无法删除 {name}：{e}");
    if path.is_dir() {
        // Only if emptied: remove_dir refuses a folder with files left.
        std::fs::remove_dir(&path).map_err(io)?;
    }
    for extra in [sidecar_path(&path), {
        let mut p = path.into_os_string();
        p.push(ERROR_SUFFIX);
        PathBuf::from(p)
    }] {
        match std::fs::remove_file(&extra) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
    }
    gongwen_common::fsutil::sync_dir(&folders.failed).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reason_is_read_back_from_what_was_written_beside_the_file() {
        let text = "这份公文没有发出。\n\n原因：\n交换中心拒收：公文格式不对。\n\n原收文单位：主送 harbin-gov\n\n怎么办：\n改正后重新发送。\n";
        assert_eq!(
            reason_of(text),
            "交换中心拒收：公文格式不对。\n\n原收文单位：主送 harbin-gov"
        );
        assert_eq!(reason_of("old agent's words\n"), "old agent's words");
    }

    #[test]
    fn a_failed_document_is_resent_with_its_fixes_and_only_names_in_failed_are_taken() {
        let d = tempfile::tempdir().unwrap();
        let folders = Folders::new(d.path());
        std::fs::create_dir_all(folders.failed.join("请示")).unwrap();
        std::fs::write(folders.failed.join("请示").join("附件1.xlsx"), b"a").unwrap();
        std::fs::write(folders.failed.join("请示").join("正文.pdf"), b"m").unwrap();
        std::fs::write(
            folders.failed.join("请示.meta.toml"),
            "title = \"关于经费的请示\"\nto = [\"nowhere-gov\"]\nurgency = \"加急\"\n",
        )
        .unwrap();
        std::fs::write(folders.failed.join("请示.error.txt"), "这份公文没有发出。").unwrap();
        let fix = Fix {
            to: vec!["prov-gov".into()],
            ..Fix::default()
        };
        let req = resend_request(&folders, "请示", &fix).unwrap();
        assert_eq!(req.to, vec!["prov-gov".to_owned()]);
        assert_eq!(req.title.as_deref(), Some("关于经费的请示"));
        assert_eq!(req.urgency.as_deref(), Some("加急"));
        let names: Vec<_> = req
            .files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["正文.pdf", "附件1.xlsx"], "the main text first");
        let listed = list(&folders, &[], 10);
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].to, vec!["nowhere-gov".to_owned()]);
        assert_eq!(count(&folders), 1);
        for bad in [
            "../state",
            "请示.error.txt",
            "请示.meta.toml",
            "",
            "nothing",
        ] {
            assert!(resend_request(&folders, bad, &fix).is_err(), "{bad}");
            assert!(remove(&folders, bad).is_err(), "{bad}");
        }
        remove(&folders, "请示").unwrap();
        assert_eq!(std::fs::read_dir(&folders.failed).unwrap().count(), 0);
    }
}
