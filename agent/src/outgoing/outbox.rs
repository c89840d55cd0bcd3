//! The outbox: find complete drops, claim them atomically into the spool,
//! and send back to `failed/` what cannot be sent, with a reason.
//!
//! File-system events make pick-up quick; a periodic rescan is the source
//! of truth, so a missed or overflowed event loses nothing. A drop is taken
//! only when complete: temporary names are ignored and its size and
//! modification time must stay the same for the settle time.
//!
//! A claim is a rename into `state/spool/<doc_id>/` (same file system), so a
//! drop is either in the outbox or ours, never both and never lost:
//!
//! ```text
//! state/spool/<doc_id>/claim.json   written first: where it came from
//!                     /meta.toml    the sidecar, if any
//!                     /files/...    the dropped file, or the dropped folder's files
//!                     /content      ciphertext   } written when sealed,
//!                     /header       signed header} header last
//! ```

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use gongwen_common::DocId;
use gongwen_common::fsutil::{sync_dir, write_atomic};
use gongwen_common::logsafe::{Escaped, EscapedPath};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::outgoing::spool;
use crate::unit::folders::Folders;

pub const SIDECAR_SUFFIX: &str = ".meta.toml";
pub const ERROR_SUFFIX: &str = ".error.txt";

/// Names a clerk's program uses while still writing, and our own files.
pub fn is_ignored(name: &str) -> bool {
    name.starts_with('.')
        || name.starts_with("~$")
        || name.ends_with(".part")
        || name.ends_with(".tmp")
        || name.ends_with(".crdownload")
        || name.ends_with(".swp")
        || name.ends_with(SIDECAR_SUFFIX)
        || name.ends_with(ERROR_SUFFIX)
}

/// Where a claimed document came from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claim {
    /// The outbox folder it was dropped in (a node id or group name).
    pub to: String,
    /// The dropped file or folder name.
    pub name: String,
    pub is_folder: bool,
    pub has_sidecar: bool,
    pub claimed_ms: i64,
    /// Taken from the outbox (not copied in by `send`, the console or an
    /// answer): if it changes before the hub has it, it goes back there.
    #[serde(default)]
    pub from_outbox: bool,
}

/// A drop seen in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drop {
    pub to: String,
    pub name: String,
    pub path: PathBuf,
    pub is_folder: bool,
    pub is_symlink: bool,
}

/// What a drop looked like at one scan: total size and latest change.
type Shape = (u64, Option<SystemTime>, usize);

/// Decides when a drop has stopped changing. Pure over its observations.
#[derive(Debug, Default)]
pub struct Stability {
    seen: HashMap<PathBuf, (Shape, Instant)>,
}

impl Stability {
    /// Record what `path` looks like at `now`; true once it has looked the
    /// same for at least `settle`.
    pub fn observe(&mut self, path: &Path, shape: Shape, now: Instant, settle: Duration) -> bool {
        match self.seen.get(path) {
            Some((s, since)) if *s == shape => now.duration_since(*since) >= settle,
            _ => {
                self.seen.insert(path.to_owned(), (shape, now));
                false
            }
        }
    }

    /// Forget everything not seen in the latest scan.
    pub fn retain(&mut self, present: &HashSet<PathBuf>) {
        self.seen.retain(|p, _| present.contains(p));
    }

    pub fn pending(&self) -> usize {
        self.seen.len()
    }
}

fn shape_of(path: &Path, is_folder: bool) -> std::io::Result<Shape> {
    let meta = std::fs::symlink_metadata(path)?;
    if !is_folder {
        return Ok((meta.len(), meta.modified().ok(), 1));
    }
    let mut size = 0;
    let mut latest = meta.modified().ok();
    let mut count = 0;
    for e in std::fs::read_dir(path)? {
        let e = e?;
        let m = e.metadata()?;
        size += m.len();
        count += 1;
        latest = latest.max(m.modified().ok());
        if is_ignored(&e.file_name().to_string_lossy()) {
            // A temporary file inside: the folder is still being filled.
            count += 1_000_000;
        }
    }
    Ok((size, latest, count))
}

/// What one look at the outbox found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Drops in recipient folders.
    pub drops: Vec<Drop>,
    /// Files dropped at the top level (they have no recipient folder), and
    /// entries whose names are not valid UTF-8: neither can be sent.
    pub refused: Vec<(PathBuf, &'static str)>,
    /// Sidecars whose drop is not beside them: waiting for it, or orphaned
    /// (their drop went out before they arrived).
    pub lonely_sidecars: Vec<LonelySidecar>,
}

/// A sidecar in `outbox/<to>/` without the drop it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LonelySidecar {
    pub to: String,
    /// The drop it names (its own name without `.meta.toml`).
    pub name: String,
    pub path: PathBuf,
}

/// Why a file at the top of the outbox is not sent.
const STRAY: &str = "它直接放在了 outbox/ 下：请放进 outbox/<收文单位编号>/（单位编号或组名，见 outbox/单位名录.txt）。";
/// Why a name that is not UTF-8 is not sent.
const NOT_UTF8: &str = "它的名字不是 UTF-8 编码（可能来自使用其他字符集的系统），无法原样传送。请改名（可以用中文）后再放入。";

/// Every drop in the outbox now, and what cannot be one.
pub fn scan(outbox: &Path) -> std::io::Result<Scan> {
    let mut found = Scan::default();
    for to_entry in std::fs::read_dir(outbox)? {
        let to_entry = to_entry?;
        let Some(to) = to_entry.file_name().to_str().map(str::to_owned) else {
            found.refused.push((to_entry.path(), NOT_UTF8));
            continue;
        };
        if is_ignored(&to) || to == crate::unit::directory::DIRECTORY_FILE {
            continue;
        }
        if !to_entry.file_type()?.is_dir() {
            found.refused.push((to_entry.path(), STRAY));
            continue;
        }
        for e in std::fs::read_dir(to_entry.path())? {
            let e = e?;
            let Some(name) = e.file_name().to_str().map(str::to_owned) else {
                found.refused.push((e.path(), NOT_UTF8));
                continue;
            };
            if let Some(drop_name) = name.strip_suffix(SIDECAR_SUFFIX)
                && !drop_name.is_empty()
                && !to_entry.path().join(drop_name).exists()
            {
                found.lonely_sidecars.push(LonelySidecar {
                    to: to.clone(),
                    name: drop_name.to_owned(),
                    path: e.path(),
                });
                continue;
            }
            if is_ignored(&name) {
                continue;
            }
            let ft = e.file_type()?;
            found.drops.push(Drop {
                to: to.clone(),
                name,
                path: e.path(),
                is_folder: ft.is_dir(),
                is_symlink: ft.is_symlink(),
            });
        }
    }
    found.drops.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(found)
}

/// Scan once and return the drops that are complete.
pub fn ready_drops(
    outbox: &Path,
    stability: &mut Stability,
    settle: Duration,
    now: Instant,
    hints: &Hints,
) -> std::io::Result<(Vec<Drop>, Scan)> {
    let mut scan = scan(outbox)?;
    let mut present = HashSet::new();
    let mut ready = Vec::new();
    // Settled by the clock alone: checked against /proc together, in one
    // pass (a backlog of ten thousand drops found at start must not read
    // /proc ten thousand times).
    let mut settled_only = Vec::new();
    for d in std::mem::take(&mut scan.drops) {
        present.insert(d.path.clone());
        if d.is_symlink {
            // Refused at once: never follow a link out of the outbox.
            ready.push(d);
            continue;
        }
        let Ok(shape) = shape_of(&d.path, d.is_folder) else {
            continue; // vanished between listing and looking: next scan
        };
        let sidecar = sidecar_path(&d.path);
        let side_shape = shape_of(&sidecar, false).ok();
        let combined = (shape.0, shape.1.max(side_shape.and_then(|s| s.1)), shape.2);
        // The file system said it is complete (renamed in, or closed after
        // writing with no write since), and so is its sidecar if it has one.
        let sidecar_done =
            side_shape.is_none() || hints.is_complete(&sidecar) || older_than(&sidecar, settle);
        let told_complete = hints.is_complete(&d.path) && sidecar_done && shape.2 < 1_000_000;
        let settled = stability.observe(&d.path, combined, now, settle);
        // Only files and folders are written to: a pipe or a device (made,
        // never closed after writing) is refused once it settles.
        let written_kind =
            std::fs::symlink_metadata(&d.path).is_ok_and(|m| m.is_file() || m.is_dir());
        if written_kind && hints.is_being_written(&d.path) {
            continue; // however long its writer pauses
        }
        if told_complete {
            ready.push(d);
        } else if settled {
            settled_only.push(d);
        }
    }
    // Settled by the clock alone (no event said it was closed): only if no
    // program we can see still has it open for writing.
    if !settled_only.is_empty() {
        let files: Vec<HashSet<(u64, u64)>> =
            settled_only.iter().map(|d| inodes_of(&d.path)).collect();
        let all: HashSet<(u64, u64)> = files.iter().flatten().copied().collect();
        let open = open_for_writing(&all);
        for (d, inodes) in settled_only.into_iter().zip(files) {
            if inodes.is_disjoint(&open) {
                ready.push(d);
            }
        }
    }
    stability.retain(&present);
    Ok((ready, scan))
}

/// The (device, inode) of the file at `path`, or of the files in the
/// folder at `path`.
fn inodes_of(path: &Path) -> HashSet<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = HashSet::new();
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return out;
    };
    if meta.is_dir() {
        for e in std::fs::read_dir(path).into_iter().flatten().flatten() {
            if let Ok(m) = e.metadata() {
                out.insert((m.dev(), m.ino()));
            }
        }
    } else {
        out.insert((meta.dev(), meta.ino()));
    }
    out
}

/// Which of the files `wanted` (device, inode) a process this agent may
/// look at (its own user's, or any when it runs as root) holds open for
/// writing: read from /proc, each descriptor of each process, once for all
/// of them. Processes of other users are not visible without privilege;
/// for those the file-system events ([`Hints`]) and the checks at sealing
/// and before filing ([`crate::outgoing::stamp`]) stand. Blocking.
pub fn open_for_writing(wanted: &HashSet<(u64, u64)>) -> HashSet<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut open = HashSet::new();
    if wanted.is_empty() {
        return open;
    }
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return open;
    };
    for p in procs.flatten() {
        if !p
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue; // not ours to see
        };
        for fd in fds.flatten() {
            let Ok(m) = std::fs::metadata(fd.path()) else {
                continue;
            };
            let file = (m.dev(), m.ino());
            if !wanted.contains(&file) || open.contains(&file) {
                continue;
            }
            let info = std::fs::read_to_string(p.path().join("fdinfo").join(fd.file_name()));
            let flags = info.ok().and_then(|text| {
                let line = text.lines().find(|l| l.starts_with("flags:"))?;
                u32::from_str_radix(line.trim_start_matches("flags:").trim(), 8).ok()
            });
            // O_ACCMODE: 1 is write-only, 2 read-write.
            if flags.is_some_and(|f| f & 0o3 != 0) {
                open.insert(file);
            }
        }
    }
    open
}

fn older_than(path: &Path, age: Duration) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|e| e >= age)
}

/// What file-system events said about paths in the outbox. A "complete"
/// hint speeds a drop up; without one the settle time decides. A "being
/// written" hint holds a drop back however long its writer pauses: a copy
/// from a clerk's PC over a slow share can stall for longer than any
/// settle time, and a file is taken only once its writer has closed it.
#[derive(Debug, Default)]
pub struct Hints {
    complete: HashSet<PathBuf>,
    /// Files created or written to and not closed since.
    writing: HashSet<PathBuf>,
}

impl Hints {
    /// Take one event: a rename into the outbox or a close after writing
    /// marks the path complete; any later change to it cancels that.
    /// Returns whether the event can change what a scan finds: opening,
    /// reading or closing without writing cannot — and the scan itself
    /// opens the outbox, so reacting to those would rescan forever.
    pub fn take(&mut self, event: &notify::Event) -> bool {
        use notify::EventKind;
        use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
        match event.kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => {}
            EventKind::Access(_) => return false,
            _ => {}
        }
        use notify::event::CreateKind;
        match event.kind {
            EventKind::Modify(ModifyKind::Name(RenameMode::To)) => {
                self.complete.extend(event.paths.iter().cloned());
            }
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {
                if let (Some(from), Some(to)) = (event.paths.first(), event.paths.last()) {
                    self.complete.remove(from);
                    self.complete.insert(to.clone());
                    // Renamed while still open: still being written.
                    if self.writing.remove(from) {
                        self.writing.insert(to.clone());
                    }
                }
            }
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
                for p in &event.paths {
                    self.writing.remove(p);
                    self.complete.insert(p.clone());
                }
            }
            EventKind::Modify(ModifyKind::Name(_)) | EventKind::Remove(_) => {
                for p in &event.paths {
                    self.complete.remove(p);
                    self.writing.remove(p);
                }
            }
            EventKind::Modify(_) | EventKind::Create(_) => {
                let written = matches!(
                    event.kind,
                    EventKind::Create(CreateKind::File | CreateKind::Any)
                        | EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any)
                );
                for p in &event.paths {
                    self.complete.remove(p);
                    if written {
                        self.writing.insert(p.clone());
                    }
                    // A change inside a folder drop: the folder is not done.
                    if let Some(parent) = p.parent() {
                        self.complete.remove(parent);
                    }
                }
            }
            _ => {}
        }
        true
    }

    pub fn is_complete(&self, path: &Path) -> bool {
        self.complete.contains(path)
    }

    /// Whether the drop at `path` (a file, or a folder and what is in it)
    /// has been written to without being closed since.
    pub fn is_being_written(&self, path: &Path) -> bool {
        self.writing.contains(path) || self.writing.iter().any(|p| p.starts_with(path))
    }

    /// Events were lost (the kernel's queue overflowed): what was being
    /// written is no longer known, and the settle time decides again.
    pub fn lost_events(&mut self) {
        self.writing.clear();
    }

    /// Forget paths that are gone.
    pub fn retain_existing(&mut self) {
        self.complete.retain(|p| p.exists());
        self.writing.retain(|p| p.exists());
    }
}

pub fn sidecar_path(drop: &Path) -> PathBuf {
    let mut s = drop.as_os_str().to_owned();
    s.push(SIDECAR_SUFFIX);
    PathBuf::from(s)
}

pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Move complete drops (and their sidecars) into the spool, together: the
/// folder syncs that make them durable are shared by the batch. For each
/// drop, in this order:
///
/// 1. a claim folder with `claim.json` (and an empty `files/` for a
///    dropped file), durable
///    (file, folder, and the spool's entry for it) — so a crash after the
///    drop moved always finds the record saying where it came from;
/// 2. the sidecar and the drop moved in;
/// 3. both ends of those moves durable (the claim folder and `files/`,
///    and the recipient folder in the outbox they left) before this
///    returns — so nothing is sent from a claim a crash could undo (the
///    drop would reappear in the outbox and be sent twice).
///
/// A drop that vanished or cannot be moved undoes its own claim and is
/// reported in its slot; the others go on. Blocking.
pub fn claim_all(folders: &Folders, drops: &[&Drop]) -> Vec<std::io::Result<DocId>> {
    let mut results: Vec<std::io::Result<DocId>> = Vec::with_capacity(drops.len());
    // 1. Claim records.
    let mut begun = Vec::new();
    for (i, d) in drops.iter().enumerate() {
        match begin_claim(folders, d) {
            Ok((doc_id, dir, has_sidecar)) => {
                results.push(Ok(doc_id));
                begun.push((i, dir, has_sidecar));
            }
            Err(e) => results.push(Err(e)),
        }
    }
    if begun.is_empty() {
        return results;
    }
    begun.retain(|(i, dir, _)| match sync_dir(dir) {
        Ok(()) => true,
        Err(e) => {
            let _ = std::fs::remove_dir_all(dir);
            results[*i] = Err(e);
            false
        }
    });
    if let Err(e) = sync_dir(&folders.spool) {
        for (i, dir, _) in begun {
            let _ = std::fs::remove_dir_all(&dir);
            results[i] = Err(std::io::Error::new(e.kind(), e.to_string()));
        }
        return results;
    }
    // 2. The moves.
    begun.retain(
        |(i, dir, has_sidecar)| match move_in(drops[*i], dir, *has_sidecar) {
            Ok(()) => true,
            Err(e) => {
                results[*i] = Err(e);
                false
            }
        },
    );
    // 3. Both ends of every move durable.
    make_moves_durable(drops, &begun, &mut results);
    for (i, _, _) in &begun {
        if let Ok(doc_id) = &results[*i] {
            let d = drops[*i];
            info!(doc = %doc_id, "claimed {}/{}", Escaped(&d.to), Escaped(&d.name));
        }
    }
    results
}

/// Step 2 of a claim: the drop (and its sidecar) moved into the spool
/// entry. A drop gone (or unreadable) between the scan and the claim
/// undoes the claim at once, the sidecar back beside where the drop was.
fn move_in(d: &Drop, dir: &Path, has_sidecar: bool) -> std::io::Result<()> {
    let sidecar = sidecar_path(&d.path);
    let moved = (|| {
        if has_sidecar {
            std::fs::rename(&sidecar, spool::sidecar(dir))?;
        }
        if d.is_folder {
            std::fs::rename(&d.path, spool::files(dir))
        } else {
            std::fs::rename(&d.path, spool::files(dir).join(&d.name))
        }
    })();
    moved.map_err(|e| {
        if has_sidecar {
            let _ = std::fs::rename(spool::sidecar(dir), &sidecar);
        }
        let _ = std::fs::remove_dir_all(dir);
        std::io::Error::new(
            e.kind(),
            format!(
                "{} could not be taken from the outbox ({e}); nothing was sent",
                Escaped(&d.name)
            ),
        )
    })
}

/// Step 3 of a claim: both ends of every move durable — each spool entry,
/// and each outbox folder a drop left (once for all the drops it held).
fn make_moves_durable(
    drops: &[&Drop],
    begun: &[(usize, PathBuf, bool)],
    results: &mut [std::io::Result<DocId>],
) {
    let mut left: Vec<&Path> = Vec::new();
    for (i, dir, has_sidecar) in begun {
        let d = drops[*i];
        let synced = if d.is_folder || *has_sidecar {
            sync_dir(dir)
        } else {
            Ok(())
        }
        .and_then(|()| {
            if d.is_folder {
                Ok(())
            } else {
                sync_dir(&spool::files(dir))
            }
        });
        if let Err(e) = synced {
            results[*i] = Err(e);
        }
        if let Some(parent) = d.path.parent()
            && !left.contains(&parent)
        {
            left.push(parent);
        }
    }
    for parent in left {
        if let Err(e) = sync_dir(parent) {
            for (i, _, _) in begun {
                if drops[*i].path.parent() == Some(parent) && results[*i].is_ok() {
                    results[*i] = Err(std::io::Error::new(e.kind(), e.to_string()));
                }
            }
        }
    }
}

/// Step 1 of a claim: the folder and its durable `claim.json` (the folder
/// itself is synced by the caller, with the batch).
fn begin_claim(folders: &Folders, drop: &Drop) -> std::io::Result<(DocId, PathBuf, bool)> {
    let doc_id = DocId::generate();
    let dir = spool::entry(folders, doc_id);
    std::fs::create_dir(&dir)?;
    let has_sidecar = sidecar_path(&drop.path).exists();
    let c = Claim {
        to: drop.to.clone(),
        name: drop.name.clone(),
        is_folder: drop.is_folder,
        has_sidecar,
        claimed_ms: now_ms(),
        from_outbox: true,
    };
    let made = (|| {
        let text = serde_json::to_vec_pretty(&c).map_err(std::io::Error::other)?;
        // A new private folder: no temporary name needed; a claim.json cut
        // short by a crash is undone at start like a missing one.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(spool::claim(&dir))?;
        f.write_all(&text)?;
        f.sync_all()?;
        // A dropped file moves into files/; a dropped folder becomes it
        // (so recovery's "files/ exists" test means "the folder moved").
        if drop.is_folder {
            Ok(())
        } else {
            std::fs::create_dir(spool::files(&dir))
        }
    })();
    match made {
        Ok(()) => Ok((doc_id, dir, has_sidecar)),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            Err(e)
        }
    }
}

pub fn read_claim(dir: &Path) -> std::io::Result<Claim> {
    let bytes = std::fs::read(spool::claim(dir))?;
    serde_json::from_slice(&bytes).map_err(std::io::Error::other)
}

/// The claimed documents in the spool, oldest first. Repairs claims a crash
/// interrupted: a claim whose drop never moved is undone (the drop is still
/// in the outbox and will be claimed again).
/// Claims whose files are in the spool: what there is to send. Read-only,
/// so it may run while the outbox is claiming more: a claim still being
/// made is not listed and not touched (the claim wakes the sender when it
/// is complete). Blocking.
pub fn claimed(folders: &Folders) -> std::io::Result<Vec<DocId>> {
    let mut ids = Vec::new();
    for e in std::fs::read_dir(&folders.spool)? {
        let e = e?;
        let Ok(doc_id) = DocId::parse(&e.file_name().to_string_lossy()) else {
            continue;
        };
        let dir = e.path();
        let Ok(claim) = read_claim(&dir) else {
            continue;
        };
        if files_moved(&dir, &claim) {
            ids.push(doc_id);
        }
    }
    ids.sort();
    Ok(ids)
}

/// Whether the drop a claim (in `dir`) names has moved into it.
fn files_moved(dir: &Path, claim: &Claim) -> bool {
    let files = spool::files(dir);
    if claim.is_folder {
        files.is_dir()
    } else {
        files.join(&claim.name).exists()
    }
}

/// At start, before anything claims: undo the claims a crash interrupted
/// before their files moved (the drop is still in the outbox) and list the
/// rest. Never while the agent runs: it would take a claim being made for
/// an interrupted one and delete the file that is moving into it. Blocking.
pub fn recover(folders: &Folders) -> std::io::Result<Vec<DocId>> {
    let mut ids = Vec::new();
    for e in std::fs::read_dir(&folders.spool)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        let Ok(doc_id) = DocId::parse(&name) else {
            continue;
        };
        let dir = e.path();
        let claim = match read_claim(&dir) {
            Ok(c) => c,
            Err(_) => {
                // Made before claim.json was durable: nothing moved yet.
                std::fs::remove_dir_all(&dir)?;
                continue;
            }
        };
        if !files_moved(&dir, &claim) {
            let origin = folders.outbox.join(&claim.to).join(&claim.name);
            if spool::sidecar(&dir).exists() {
                std::fs::rename(spool::sidecar(&dir), sidecar_path(&origin))?;
            }
            std::fs::remove_dir_all(&dir)?;
            continue;
        }
        ids.push(doc_id);
    }
    ids.sort();
    Ok(ids)
}

/// The documents claimed but not yet taken by the hub that answer `asked`
/// (their sidecar says `in_reply_to`). Blocking.
pub fn queued_answers(folders: &Folders, asked: DocId) -> Vec<DocId> {
    let Ok(entries) = std::fs::read_dir(&folders.spool) else {
        return Vec::new();
    };
    let asked = asked.to_string();
    entries
        .flatten()
        .filter_map(|e| {
            let id = DocId::parse(e.file_name().to_str()?).ok()?;
            let text = std::fs::read_to_string(spool::sidecar(&e.path())).ok()?;
            let sc = crate::outgoing::draft::parse_sidecar("meta.toml", &text).ok()?;
            (sc.in_reply_to.as_deref() == Some(asked.as_str())).then_some(id)
        })
        .collect()
}

/// A name in `dir` not used yet: `name`, `name (2)`, `name (3)` … (a name
/// that is not UTF-8 is kept as it is, numbered at its end).
pub(crate) fn free_name(dir: &Path, name: &std::ffi::OsStr) -> PathBuf {
    let first = dir.join(name);
    let mut error_file = name.to_owned();
    error_file.push(ERROR_SUFFIX);
    if !first.exists() && !dir.join(&error_file).exists() {
        return first;
    }
    let (stem, ext) = match name.to_str().and_then(|n| n.rsplit_once('.')) {
        Some((s, e)) if !s.is_empty() => (std::ffi::OsString::from(s), format!(".{e}")),
        _ => (name.to_owned(), String::new()),
    };
    (2..)
        .map(|i| {
            let mut n = stem.clone();
            n.push(format!(" ({i}){ext}"));
            dir.join(n)
        })
        .find(|p| !p.exists())
        .unwrap_or(first)
}

/// The usual advice for a drop that could not be sent.
const RESEND: &str =
    "改正上述问题后，在控制台的“问题”页面点“重新发送”；或把文件放回 outbox/<收文单位编号>/。";

/// Write `<failed>/<name>.error.txt` with what happened and what to do.
pub(crate) fn write_error(failed_path: &Path, happened: &str, todo: &str) -> std::io::Result<()> {
    let mut p = failed_path.as_os_str().to_owned();
    p.push(ERROR_SUFFIX);
    let text = format!("这份公文没有发出。\n\n原因：\n{happened}\n\n怎么办：\n{todo}\n");
    write_atomic(Path::new(&p), text.as_bytes(), 0o644)
}

/// Give up on a drop still in the outbox (symlinks, stray files, names
/// that are not UTF-8). Its name is kept byte for byte.
pub fn fail_drop(folders: &Folders, path: &Path, why: &str) -> std::io::Result<PathBuf> {
    let name = path
        .file_name()
        .map(|n| n.to_owned())
        .unwrap_or_else(|| "unnamed".into());
    let dest = free_name(&folders.failed, &name);
    std::fs::rename(path, &dest)?;
    let sidecar = sidecar_path(path);
    if sidecar.exists() {
        std::fs::rename(&sidecar, sidecar_path(&dest))?;
    }
    write_error(&dest, why, RESEND)?;
    sync_dir(&folders.failed)?;
    warn!("{} moved to failed/: {}", EscapedPath(path), Escaped(why));
    Ok(dest)
}

/// Move a claimed drop's files out of its spool entry `dir` to `dest`:
/// the folder as it was dropped, or the one file.
fn move_claimed(dir: &Path, claim: &Claim, dest: &Path) -> std::io::Result<()> {
    if claim.is_folder {
        std::fs::rename(spool::files(dir), dest)
    } else {
        std::fs::rename(spool::files(dir).join(&claim.name), dest)
    }
}

/// Give up on a claimed document: its files go to `failed/` with a reason
/// that also says whom it was for, and its sidecar with them, carrying its
/// recipients (a document composed in the console or sent with `send` has
/// no outbox folder to name them). `record` keeps the failure (where the
/// files went, the main recipients and copies) once the files are moved
/// and before the reason is written beside them: whoever sees the reason
/// finds the record. Returns where the files went. Blocking.
pub fn fail_claimed(
    folders: &Folders,
    doc_id: DocId,
    why: &str,
    record: impl FnOnce(&Path, &[String], &[String]) -> std::io::Result<()>,
) -> std::io::Result<PathBuf> {
    let dir = spool::entry(folders, doc_id);
    let claim = read_claim(&dir)?;
    let sidecar = std::fs::read_to_string(spool::sidecar(&dir))
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok());
    let names = |table: &Option<toml::Table>, key: &str| -> Vec<String> {
        table
            .as_ref()
            .and_then(|t| t.get(key))
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut to = vec![claim.to.clone()];
    for n in names(&sidecar, "to") {
        if !to.contains(&n) {
            to.push(n);
        }
    }
    let cc = names(&sidecar, "cc");
    let dest = free_name(&folders.failed, std::ffi::OsStr::new(&claim.name));
    move_claimed(&dir, &claim, &dest)?;
    match sidecar {
        // Not from an outbox folder: the sidecar names every recipient.
        Some(mut table) if !claim.from_outbox => {
            table.insert(
                "to".into(),
                toml::Value::Array(to.iter().cloned().map(toml::Value::String).collect()),
            );
            let text = toml::to_string(&table).map_err(std::io::Error::other)?;
            write_atomic(&sidecar_path(&dest), text.as_bytes(), 0o644)?;
        }
        _ => {
            if spool::sidecar(&dir).exists() {
                std::fs::rename(spool::sidecar(&dir), sidecar_path(&dest))?;
            }
        }
    }
    // A record that cannot be kept (the store failing) must not cost the
    // reason beside the files, nor leave the spool entry behind: the
    // files and their reason are kept all the same, and the error is
    // returned once they are.
    let recorded = record(&dest, &to, &cc);
    let mut happened = format!("{why}\n\n原收文单位：主送 {}", to.join("、"));
    if !cc.is_empty() {
        happened.push_str(&format!("；抄送 {}", cc.join("、")));
    }
    write_error(&dest, &happened, RESEND)?;
    sync_dir(&folders.failed)?;
    std::fs::remove_dir_all(&dir)?;
    warn!(
        doc = %doc_id,
        "{} moved to failed/: {}",
        Escaped(&claim.name),
        Escaped(why)
    );
    recorded.map(|()| dest)
}

/// Give a claimed drop back to the outbox: it changed after it was taken,
/// before the hub had it (it was still being written after all). It goes
/// back where it was dropped, with its sidecar, and is taken again, as a
/// new document, once it is finished; nothing was sent. A claim that did
/// not come from the outbox (copies `send` or the console made) cannot go
/// back and goes to `failed/` instead. Blocking.
pub fn put_back(
    folders: &Folders,
    doc_id: DocId,
    why: &str,
    record: impl FnOnce(&Path, &[String], &[String]) -> std::io::Result<()>,
) -> std::io::Result<PathBuf> {
    let dir = spool::entry(folders, doc_id);
    let claim = read_claim(&dir)?;
    if !claim.from_outbox {
        let why = format!("它在取走之后又被改动，没有发出：{why}");
        return fail_claimed(folders, doc_id, &why, record);
    }
    let origin = folders.outbox.join(&claim.to);
    std::fs::create_dir_all(&origin)?;
    let dest = free_name(&origin, std::ffi::OsStr::new(&claim.name));
    move_claimed(&dir, &claim, &dest)?;
    if spool::sidecar(&dir).exists() {
        std::fs::rename(spool::sidecar(&dir), sidecar_path(&dest))?;
    }
    sync_dir(&origin)?;
    std::fs::remove_dir_all(&dir)?;
    sync_dir(&folders.spool)?;
    warn!(
        doc = %doc_id,
        "{} changed after it was taken for sending ({}); nothing was sent: put back into outbox/{}/ to be taken again once it is finished",
        Escaped(&claim.name),
        Escaped(why),
        Escaped(&claim.to)
    );
    Ok(dest)
}

/// A queued document's title and recipients, as the page that follows it
/// shows them (the title a drop's name gives when the sidecar sets none).
/// Blocking.
pub fn queued_facts(folders: &Folders, doc_id: DocId) -> (String, Vec<String>) {
    let dir = spool::entry(folders, doc_id);
    let claim = read_claim(&dir).ok();
    let sidecar = std::fs::read_to_string(spool::sidecar(&dir))
        .ok()
        .and_then(|t| crate::outgoing::draft::parse_sidecar("", &t).ok());
    let mut to: Vec<String> = claim.iter().map(|c| c.to.clone()).collect();
    if let Some(sc) = &sidecar {
        for n in sc.to.clone().into_vec() {
            if !to.contains(&n) {
                to.push(n);
            }
        }
    }
    let title = sidecar
        .and_then(|s| s.title)
        .filter(|t| !t.trim().is_empty())
        .or_else(|| {
            claim
                .as_ref()
                .map(|c| crate::outgoing::draft::default_title(&c.name))
        })
        .unwrap_or_default();
    (title, to)
}

/// What `gongwen-agent send` asks for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct SendRequest {
    /// The first is the main text (正文), the rest attachments.
    pub files: Vec<PathBuf>,
    pub to: Vec<String>,
    #[serde(default)]
    pub cc: Vec<String>,
    pub title: Option<String>,
    pub doc_number: Option<String>,
    pub doc_type: Option<String>,
    pub urgency: Option<String>,
    pub deadline: Option<String>,
    pub note: Option<String>,
    /// 经办人 and their phone.
    #[serde(default)]
    pub operator: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    /// Ask each recipient for an answer: "decision" or "report".
    #[serde(default)]
    pub reply: Option<String>,
    /// By when: a time, or a span counted by the hub.
    #[serde(default)]
    pub reply_by: Option<String>,
    /// This answers a received document.
    #[serde(default)]
    pub in_reply_to: Option<DocId>,
    #[serde(default)]
    pub decision: Option<String>,
    #[serde(default)]
    pub supersedes: Option<DocId>,
    /// This forwards a received document (转发).
    #[serde(default)]
    pub forward_of: Option<DocId>,
    /// The GB/T 9704 elements (签发人, 成文日期 …).
    #[serde(default)]
    pub elements: gongwen_common::elements::Elements,
}

/// The sidecar `send` writes for its claim.
#[derive(Debug, Serialize)]
struct SidecarOut<'a> {
    main: &'a str,
    to: &'a [String],
    cc: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    doc_number: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    doc_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    urgency: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deadline: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    operator: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    phone: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply_by: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    in_reply_to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    decision: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    supersedes: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    forward_of: Option<String>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    issuer: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    signer: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    written_on: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    copy_no: bool,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    attachments_note: &'a [String],
    #[serde(skip_serializing_if = "str::is_empty")]
    printed_by: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    printed_on: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    publicity: Option<&'static str>,
}

/// Claim copies of files named on the command line (the originals stay
/// where they are). Blocking.
pub fn claim_copies(folders: &Folders, req: &SendRequest) -> Result<DocId, String> {
    claim_files(folders, req, false)
}

/// Claim `req.files`: copied (the command line's files stay where they
/// are), or, with `take`, moved in (files a console upload staged on the
/// same file system, so nothing is written twice). The same checks and
/// the same durable steps either way. Blocking.
pub fn claim_files(folders: &Folders, req: &SendRequest, take: bool) -> Result<DocId, String> {
    let (Some(_), Some(first_to)) = (req.files.first(), req.to.first()) else {
        return Err("name at least one file and one recipient (--to)".into());
    };
    let names = file_names(&req.files)?;
    let io = |e: std::io::Error| e.to_string();
    let doc_id = DocId::generate();
    let dir = spool::entry(folders, doc_id);
    std::fs::create_dir(&dir).map_err(io)?;
    let files = spool::files(&dir);
    std::fs::create_dir(&files).map_err(io)?;
    let result = (|| -> Result<(), String> {
        let text = sidecar_text(req, &names[0])?;
        write_atomic(&spool::sidecar(&dir), text.as_bytes(), 0o600).map_err(io)?;
        for (f, name) in req.files.iter().zip(&names) {
            let dest = files.join(name);
            if take {
                std::fs::rename(f, &dest).map_err(|e| format!("{}: {e}", f.display()))?;
            } else {
                std::fs::copy(f, &dest).map_err(|e| format!("{}: {e}", f.display()))?;
            }
            std::fs::File::open(&dest)
                .and_then(|d| d.sync_all())
                .map_err(io)?;
        }
        sync_dir(&files).map_err(io)?;
        let title_name = crate::outgoing::draft::default_title(&names[0]);
        let c = Claim {
            to: first_to.clone(),
            name: title_name,
            is_folder: true,
            has_sidecar: true,
            claimed_ms: now_ms(),
            from_outbox: false,
        };
        // claim.json last: until it exists, recovery removes the directory.
        let text = serde_json::to_vec_pretty(&c).map_err(|e| e.to_string())?;
        write_atomic(&spool::claim(&dir), &text, 0o600).map_err(io)?;
        sync_dir(&dir).map_err(io)?;
        sync_dir(&folders.spool).map_err(io)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(e);
    }
    info!(doc = %doc_id, "queued {} file(s) from the command line", names.len());
    Ok(doc_id)
}

/// The names the files will have in the document: each a regular file,
/// with a name a document may carry, no two alike.
fn file_names(files: &[PathBuf]) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    for f in files {
        let meta = std::fs::metadata(f).map_err(|e| format!("{}: {e}", f.display()))?;
        if !meta.is_file() {
            return Err(format!("{} is not a regular file", f.display()));
        }
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| format!("{} has no file name", f.display()))?;
        gongwen_common::envelope::check_file_name(&name).map_err(|e| e.to_string())?;
        if names.contains(&name) {
            return Err(format!("two files are named {name:?}"));
        }
        names.push(name);
    }
    Ok(names)
}

/// The sidecar a request makes, checked the way the sender will check it,
/// so a bad option fails here and not later.
fn sidecar_text(req: &SendRequest, main: &str) -> Result<String, String> {
    let sidecar = SidecarOut {
        main,
        to: &req.to[1..],
        cc: &req.cc,
        title: req.title.as_deref(),
        doc_number: req.doc_number.as_deref(),
        doc_type: req.doc_type.as_deref(),
        urgency: req.urgency.as_deref(),
        deadline: req.deadline.as_deref(),
        note: req.note.as_deref(),
        operator: req.operator.as_deref(),
        phone: req.phone.as_deref(),
        reply: req.reply.as_deref(),
        reply_by: req.reply_by.as_deref(),
        in_reply_to: req.in_reply_to.map(|d| d.to_string()),
        decision: req.decision.as_deref(),
        supersedes: req.supersedes.map(|d| d.to_string()),
        forward_of: req.forward_of.map(|d| d.to_string()),
        issuer: &req.elements.issuers,
        signer: &req.elements.signers,
        written_on: req.elements.written_on.as_deref(),
        copy_no: req.elements.copy_numbers,
        attachments_note: &req.elements.attachments_note,
        printed_by: &req.elements.printed_by,
        printed_on: req.elements.printed_on.as_deref(),
        publicity: req.elements.publicity.map(|p| p.chinese()),
    };
    let text = toml::to_string(&sidecar).map_err(|e| e.to_string())?;
    let sc = crate::outgoing::draft::parse_sidecar("send", &text).map_err(|e| e.to_string())?;
    crate::outgoing::draft::check_sidecar(&sc, time::OffsetDateTime::now_utc())
        .map_err(|e| e.to_string())?;
    Ok(text)
}

/// Watch the outbox for the agent's whole life: claim complete drops and
/// wake the uploader. Runs whether or not the hub is reachable, so drops
/// queue in the spool while it is not.
pub async fn watch(
    me: std::sync::Arc<crate::unit::identity::Identity>,
    outgoing: std::sync::Arc<crate::unit::outgoing::Outgoing>,
    counters: std::sync::Arc<crate::unit::counters::Counters>,
) {
    let outbox = me.folders().outbox.clone();
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel::<Option<notify::Event>>();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Any event (including an overflow `Rescan`) means "look again";
        // the scan decides what changed.
        let _ = tx.send(event.ok());
    })
    .and_then(|mut w| {
        notify::Watcher::watch(&mut w, &outbox, notify::RecursiveMode::Recursive).map(|()| w)
    });
    let _watcher = match watcher {
        Ok(w) => Some(w),
        Err(e) => {
            warn!("file-system events unavailable ({e}); relying on the periodic rescan");
            None
        }
    };
    let settle = me.config().outbox_settle;
    let rescan = me.config().outbox_rescan;
    let mut state = ScanState::new(me.folders());
    let mut first_scan = true;
    loop {
        counters.outbox_scanned();
        let (me2, outgoing2) = (me.clone(), outgoing.clone());
        let scanned =
            tokio::task::spawn_blocking(move || state.scan(&me2, &outgoing2, settle)).await;
        if first_scan {
            // What was dropped while the agent was down has been looked at:
            // the service is up (systemd Type=notify).
            first_scan = false;
            gongwen_common::daemon::notify_ready();
        }
        let claimed = match scanned {
            Ok((st, claimed)) => {
                state = st;
                claimed
            }
            Err(e) => {
                warn!("outbox scan failed: {e}");
                state = ScanState::new(me.folders());
                0
            }
        };
        if claimed > 0 {
            outgoing.wake();
        }
        let next = if state.pending() > 0 {
            (settle / 2).clamp(Duration::from_millis(20), rescan)
        } else {
            rescan
        };
        let until = tokio::time::Instant::now() + next;
        wait_for_change(&mut events, &mut state.hints, until).await;
    }
}

/// Wait until the outbox may have changed (an event that matters, or a
/// lost one), or until `until`.
async fn wait_for_change(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<Option<notify::Event>>,
    hints: &mut Hints,
    until: tokio::time::Instant,
) {
    loop {
        tokio::select! {
            Some(event) = events.recv() => {
                // An overflow (no event) means "look again", knowing less
                // than before.
                let mut take = |event: Option<notify::Event>| match event {
                    Some(e) if !e.need_rescan() => hints.take(&e),
                    _ => {
                        hints.lost_events();
                        true
                    }
                };
                let mut relevant = take(event);
                // Take the rest of a burst into the same scan.
                while let Ok(event) = events.try_recv() {
                    relevant |= take(event);
                }
                if relevant {
                    return;
                }
            }
            _ = tokio::time::sleep_until(until) => return,
        }
    }
}

/// What the watcher remembers between scans: how long each drop has been
/// still, hints of what changed, and the claims made lately.
struct ScanState {
    stability: Stability,
    stray_stability: Stability,
    hints: Hints,
    recent: RecentClaims,
}

impl ScanState {
    /// Claims still in the spool (made before a restart) count as recent.
    fn new(folders: &Folders) -> ScanState {
        ScanState {
            stability: Stability::default(),
            stray_stability: Stability::default(),
            hints: Hints::default(),
            recent: RecentClaims::from_spool(folders),
        }
    }

    /// Drops still settling.
    fn pending(&self) -> usize {
        self.stability.pending() + self.stray_stability.pending()
    }

    /// Look at the outbox once and claim what is ready; how many were
    /// claimed. Blocking.
    fn scan(
        mut self,
        me: &crate::unit::identity::Identity,
        outgoing: &crate::unit::outgoing::Outgoing,
        settle: Duration,
    ) -> (ScanState, usize) {
        let now = Instant::now();
        let outbox = &me.folders().outbox;
        let ScanState {
            stability,
            stray_stability,
            hints,
            recent,
        } = &mut self;
        let result = ready_drops(outbox, stability, settle, now, hints).map(|(ready, mut scan)| {
            scan.refused.retain(|(p, _)| {
                shape_of(p, false)
                    .map(|shape| stray_stability.observe(p, shape, now, settle))
                    .unwrap_or(false)
            });
            (ready, scan)
        });
        let claimed = match &result {
            Ok((ready, scan)) => {
                outgoing.claim(|folders| act_on(folders, ready, scan, recent, settle))
            }
            Err(e) => {
                warn!("cannot scan the outbox {}: {e}", outbox.display());
                0
            }
        };
        hints.retain_existing();
        (self, claimed)
    }
}

/// Claim the ready drops and refuse the ones that can never be sent, and
/// sidecars that came after their drop had gone. Returns how many were
/// claimed. Blocking.
fn act_on(
    folders: &Folders,
    ready: &[Drop],
    scan: &Scan,
    recent: &mut RecentClaims,
    settle: Duration,
) -> usize {
    let mut claimed = 0;
    let mut to_claim = Vec::new();
    for d in ready {
        if d.is_symlink {
            if let Err(e) = fail_drop(
                folders,
                &d.path,
                "它是快捷方式（符号链接）：只发送放进发件箱的文件本身。请把文件本身复制进来。",
            ) {
                warn!("cannot take {}: {e}", EscapedPath(&d.path));
            }
        } else {
            to_claim.push(d);
        }
    }
    let now = SystemTime::now();
    let alone: Vec<bool> = to_claim
        .iter()
        .map(|d| !sidecar_path(&d.path).exists())
        .collect();
    for ((d, result), alone) in to_claim
        .iter()
        .zip(claim_all(folders, &to_claim))
        .zip(alone)
    {
        match result {
            Ok(doc_id) => {
                claimed += 1;
                if alone {
                    recent.record(RecentClaim {
                        to: d.to.clone(),
                        name: d.name.clone(),
                        doc_id,
                        at: now,
                    });
                }
            }
            Err(e) => warn!(
                "cannot take {}: {}",
                EscapedPath(&d.path),
                Escaped(&e.to_string())
            ),
        }
    }
    for (p, why) in &scan.refused {
        if let Err(e) = fail_drop(folders, p, why) {
            warn!("cannot move {}: {e}", EscapedPath(p));
        }
    }
    recent.forget_before(
        now.checked_sub(ORPHAN_WINDOW)
            .unwrap_or(SystemTime::UNIX_EPOCH),
    );
    for sidecar in &scan.lonely_sidecars {
        // Only once it has stopped changing: it may still be being written.
        if !older_than(&sidecar.path, settle) {
            continue;
        }
        let Some(written) = std::fs::metadata(&sidecar.path)
            .and_then(|m| m.modified())
            .ok()
        else {
            continue;
        };
        if let Some(went) = recent.orphaned_by(sidecar, written)
            && let Err(e) = fail_orphan(folders, sidecar, went)
        {
            warn!("cannot move {}: {e}", EscapedPath(&sidecar.path));
        }
    }
    claimed
}

/// How long after a drop was taken a sidecar of the same name counts as
/// having come too late for it (rather than being for a new drop of the
/// same name, which would come after its sidecar).
pub const ORPHAN_WINDOW: Duration = Duration::from_secs(10 * 60);

/// A drop taken from the outbox lately.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentClaim {
    pub to: String,
    pub name: String,
    pub doc_id: DocId,
    pub at: SystemTime,
}

/// Drops taken without a sidecar lately: a sidecar that turns up for one of
/// them came too late. Pure over what it is told.
#[derive(Debug, Default)]
pub struct RecentClaims {
    claims: Vec<RecentClaim>,
}

impl RecentClaims {
    /// The claims in the spool that were made without a sidecar (they
    /// survive a restart; the ones already filed under sent/ do not).
    pub fn from_spool(folders: &Folders) -> RecentClaims {
        let mut recent = RecentClaims::default();
        let Ok(entries) = std::fs::read_dir(&folders.spool) else {
            return recent;
        };
        for e in entries.flatten() {
            let Some(doc_id) = e.file_name().to_str().and_then(|n| DocId::parse(n).ok()) else {
                continue;
            };
            if let Ok(c) = read_claim(&e.path())
                && !c.has_sidecar
            {
                let ms = u64::try_from(c.claimed_ms).unwrap_or(0);
                recent.record(RecentClaim {
                    to: c.to,
                    name: c.name,
                    doc_id,
                    at: SystemTime::UNIX_EPOCH + Duration::from_millis(ms),
                });
            }
        }
        recent
    }

    /// Remember a drop taken without a sidecar.
    pub fn record(&mut self, claim: RecentClaim) {
        self.claims.push(claim);
    }

    pub fn forget_before(&mut self, t: SystemTime) {
        self.claims.retain(|c| c.at >= t);
    }

    /// The drop `sidecar` was meant for, if that drop was taken without it
    /// shortly before the sidecar was written.
    pub fn orphaned_by(
        &self,
        sidecar: &LonelySidecar,
        written: SystemTime,
    ) -> Option<&RecentClaim> {
        // A sidecar written a moment before the claim looked for it also
        // missed it (file-system times are coarse).
        let slack = Duration::from_secs(2);
        self.claims
            .iter()
            .filter(|c| c.to == sidecar.to && c.name == sidecar.name)
            .filter(|c| {
                written + slack >= c.at
                    && written.duration_since(c.at).unwrap_or_default() <= ORPHAN_WINDOW
            })
            .max_by_key(|c| c.at)
    }
}

/// Move a sidecar that came after its drop went out to `failed/`, saying
/// which document went without it and what to do.
fn fail_orphan(
    folders: &Folders,
    sidecar: &LonelySidecar,
    went: &RecentClaim,
) -> std::io::Result<()> {
    let file_name = format!("{}{SIDECAR_SUFFIX}", sidecar.name);
    let dest = free_name(&folders.failed, std::ffi::OsStr::new(&file_name));
    std::fs::rename(&sidecar.path, &dest)?;
    let happened = format!(
        "{file_name} 在 {name} 之后才放进 outbox/{to}/，而 {name} 已按默认信息发出（公文 {doc}：标题取自文件名，平件，无文号和期限）。这个附注文件中的信息没有用上。",
        to = sidecar.to,
        name = sidecar.name,
        doc = went.doc_id,
    );
    let todo = format!(
        "如果公文必须带这些信息：在控制台“发文”中撤回公文 {doc}，再重新发送，并且先放附注文件、后放文件（先写 {file_name}，再放 {name}），或放入一个同时装有两者的文件夹。如果公文这样发出没有问题，删掉这个附注文件即可。",
        doc = went.doc_id,
        name = sidecar.name,
    );
    write_error(&dest, &happened, &todo)?;
    sync_dir(&folders.failed)?;
    warn!(
        doc = %went.doc_id,
        "{} came after its file had gone out without it; moved to failed/",
        Escaped(&file_name)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A claim folder with its claim.json and nothing moved into it yet:
    /// what a claim in progress, or one a crash interrupted, looks like.
    fn half_claim(f: &Folders, name: &str) -> PathBuf {
        let half = f.spool.join(DocId::generate().to_string());
        std::fs::create_dir(&half).unwrap();
        let c = Claim {
            to: "harbin-gov".into(),
            name: name.into(),
            is_folder: false,
            has_sidecar: false,
            claimed_ms: 0,
            from_outbox: true,
        };
        std::fs::write(half.join("claim.json"), serde_json::to_vec(&c).unwrap()).unwrap();
        half
    }

    /// One drop claimed on its own.
    fn claim(folders: &Folders, drop: &Drop) -> std::io::Result<DocId> {
        claim_all(folders, &[drop]).remove(0)
    }

    #[test]
    fn a_sidecar_written_after_its_drop_was_taken_is_orphaned_and_one_for_a_new_drop_is_not() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let doc_id = DocId::generate();
        let mut recent = RecentClaims::default();
        recent.record(RecentClaim {
            to: "harbin-gov".into(),
            name: "通知.pdf".into(),
            doc_id,
            at: t0,
        });
        let sidecar = |to: &str, name: &str| LonelySidecar {
            to: to.into(),
            name: name.into(),
            path: PathBuf::from(format!("/o/{to}/{name}.meta.toml")),
        };
        let late = sidecar("harbin-gov", "通知.pdf");
        let after = |secs| t0 + Duration::from_secs(secs);
        assert_eq!(
            recent.orphaned_by(&late, after(3)).map(|c| c.doc_id),
            Some(doc_id)
        );
        // Written a moment before the claim looked for it: missed it too.
        assert!(
            recent
                .orphaned_by(&late, t0 - Duration::from_secs(1))
                .is_some()
        );
        // Long after, it is for a new drop of the same name, still to come.
        assert!(
            recent
                .orphaned_by(&late, after(ORPHAN_WINDOW.as_secs() + 1))
                .is_none()
        );
        // Written well before the claim: not about that drop.
        assert!(
            recent
                .orphaned_by(&late, t0 - Duration::from_secs(60))
                .is_none()
        );
        // Another name, another recipient folder.
        assert!(
            recent
                .orphaned_by(&sidecar("harbin-gov", "报告.pdf"), after(3))
                .is_none()
        );
        assert!(
            recent
                .orphaned_by(&sidecar("daqing-gov", "通知.pdf"), after(3))
                .is_none()
        );
        recent.forget_before(after(1));
        assert!(recent.orphaned_by(&late, after(3)).is_none());
    }

    #[test]
    fn a_scan_finds_lonely_sidecars_stray_files_and_names_that_are_not_utf8() {
        use std::os::unix::ffi::OsStrExt;
        let d = tempfile::tempdir().unwrap();
        let outbox = d.path();
        let to = outbox.join("harbin-gov");
        std::fs::create_dir(&to).unwrap();
        std::fs::write(to.join("有伴.pdf"), b"x").unwrap();
        std::fs::write(to.join("有伴.pdf.meta.toml"), b"").unwrap();
        std::fs::write(to.join("孤单.pdf.meta.toml"), b"").unwrap();
        std::fs::write(to.join(std::ffi::OsStr::from_bytes(b"\xff\xfe.txt")), b"x").unwrap();
        std::fs::write(outbox.join("stray.txt"), b"x").unwrap();
        let found = scan(outbox).unwrap();
        assert_eq!(found.drops.len(), 1);
        assert_eq!(found.drops[0].name, "有伴.pdf");
        assert_eq!(
            found.lonely_sidecars,
            vec![LonelySidecar {
                to: "harbin-gov".into(),
                name: "孤单.pdf".into(),
                path: to.join("孤单.pdf.meta.toml"),
            }]
        );
        let refused: Vec<_> = found.refused.iter().map(|(_, why)| *why).collect();
        assert_eq!(refused.len(), 2, "{refused:?}");
        assert!(refused.contains(&STRAY) && refused.contains(&NOT_UTF8));
    }

    #[test]
    fn temporary_names_and_our_own_files_are_ignored() {
        for n in [
            ".hidden",
            "~$报告.docx",
            "a.part",
            "a.tmp",
            "x.crdownload",
            "a.pdf.meta.toml",
            "a.pdf.error.txt",
        ] {
            assert!(is_ignored(n), "{n}");
        }
        for n in ["关于召开会议的通知.docx", "report.pdf", "a"] {
            assert!(!is_ignored(n), "{n}");
        }
    }

    #[test]
    fn a_drop_is_ready_only_after_it_stopped_changing_for_the_settle_time() {
        let mut s = Stability::default();
        let p = Path::new("/o/h/a.pdf");
        let t0 = Instant::now();
        let settle = Duration::from_millis(500);
        let shape = (10, None, 1);
        assert!(!s.observe(p, shape, t0, settle));
        assert!(!s.observe(p, shape, t0 + Duration::from_millis(300), settle));
        // It grew: start over.
        let grown = (20, None, 1);
        assert!(!s.observe(p, grown, t0 + Duration::from_millis(600), settle));
        assert!(!s.observe(p, grown, t0 + Duration::from_millis(900), settle));
        assert!(s.observe(p, grown, t0 + Duration::from_millis(1100), settle));
    }

    #[test]
    fn a_drop_renamed_in_is_ready_at_once_and_a_later_write_cancels_a_close_hint() {
        use notify::event::{AccessKind, AccessMode, DataChange, ModifyKind, RenameMode};
        use notify::{Event, EventKind};
        let d = tempfile::tempdir().unwrap();
        let outbox = d.path();
        std::fs::create_dir(outbox.join("harbin-gov")).unwrap();
        let a = outbox.join("harbin-gov/a.txt");
        let b = outbox.join("harbin-gov/b.txt");
        std::fs::write(&a, b"renamed in").unwrap();
        std::fs::write(&b, b"written in place").unwrap();
        let mut hints = Hints::default();
        hints.take(
            &Event::new(EventKind::Modify(ModifyKind::Name(RenameMode::To))).add_path(a.clone()),
        );
        hints.take(
            &Event::new(EventKind::Access(AccessKind::Close(AccessMode::Write)))
                .add_path(b.clone()),
        );
        hints.take(
            &Event::new(EventKind::Modify(ModifyKind::Data(DataChange::Any))).add_path(b.clone()),
        );
        let mut st = Stability::default();
        let settle = Duration::from_secs(60);
        let (ready, _) = ready_drops(outbox, &mut st, settle, Instant::now(), &hints).unwrap();
        let names: Vec<_> = ready.iter().map(|r| r.name.clone()).collect();
        assert_eq!(names, ["a.txt"], "b.txt was written to after its close");
    }

    #[test]
    fn only_events_that_can_change_the_outbox_call_for_a_scan() {
        use notify::event::{AccessKind, AccessMode, CreateKind};
        use notify::{Event, EventKind};
        let p = std::path::PathBuf::from("/outbox/harbin-gov");
        let mut hints = Hints::default();
        let event = |k: EventKind| Event::new(k).add_path(p.clone());
        // The scan opens and reads the outbox itself: no rescan for that.
        assert!(!hints.take(&event(EventKind::Access(AccessKind::Open(AccessMode::Any)))));
        assert!(!hints.take(&event(EventKind::Access(AccessKind::Close(
            AccessMode::Read
        )))));
        assert!(!hints.take(&event(EventKind::Access(AccessKind::Read))));
        assert!(hints.take(&event(EventKind::Access(AccessKind::Close(
            AccessMode::Write
        )))));
        assert!(hints.take(&event(EventKind::Create(CreateKind::File))));
        assert!(hints.take(&event(EventKind::Any)));
    }

    #[test]
    fn a_file_written_to_and_not_yet_closed_is_held_back_however_long_its_writer_pauses() {
        use notify::event::{AccessKind, AccessMode, CreateKind, DataChange, ModifyKind};
        use notify::{Event, EventKind};
        let d = tempfile::tempdir().unwrap();
        let f = Folders::new(d.path());
        f.create().unwrap();
        let dir = f.outbox.join("harbin-gov");
        std::fs::create_dir(&dir).unwrap();
        let file = dir.join("x.docx");
        std::fs::write(&file, b"PK half").unwrap();
        let mut hints = Hints::default();
        let event = |k: EventKind| Event::new(k).add_path(file.clone());
        hints.take(&event(EventKind::Create(CreateKind::File)));
        hints.take(&event(EventKind::Modify(ModifyKind::Data(DataChange::Any))));
        assert!(hints.is_being_written(&file));
        let mut st = Stability::default();
        let settle = Duration::from_millis(100);
        let t0 = Instant::now();
        for later in [0, 1, 60, 3600] {
            let (ready, _) = ready_drops(
                &f.outbox,
                &mut st,
                settle,
                t0 + Duration::from_secs(later),
                &hints,
            )
            .unwrap();
            assert!(ready.is_empty(), "taken {later} s into a stall");
        }
        // Closed after writing: complete, at once.
        hints.take(&event(EventKind::Access(AccessKind::Close(
            AccessMode::Write,
        ))));
        assert!(!hints.is_being_written(&file));
        let (ready, _) = ready_drops(&f.outbox, &mut st, settle, t0, &hints).unwrap();
        assert_eq!(ready.len(), 1);
        // A folder drop with a file being written inside is held back too;
        // and lost events forget what was being written.
        let folder = dir.join("材料");
        hints.take(
            &Event::new(EventKind::Create(CreateKind::File)).add_path(folder.join("附件.pdf")),
        );
        assert!(hints.is_being_written(&folder));
        hints.lost_events();
        assert!(!hints.is_being_written(&folder));
    }

    #[test]
    fn a_file_this_process_holds_open_for_writing_is_seen_in_proc() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("x.docx");
        let held = std::fs::File::create(&path).unwrap();
        let written = |p: &Path| !open_for_writing(&inodes_of(p)).is_empty();
        assert!(written(&path));
        assert!(written(d.path()), "a folder holding it");
        drop(held);
        assert!(!written(&path));
        let _reading = std::fs::File::open(&path).unwrap();
        assert!(!written(&path), "open for reading only");
    }

    #[test]
    fn a_drop_that_vanishes_before_its_claim_leaves_no_half_claim() {
        let d = tempfile::tempdir().unwrap();
        let f = Folders::new(d.path());
        f.create().unwrap();
        let dir = f.outbox.join("harbin-gov");
        std::fs::create_dir(&dir).unwrap();
        let file = dir.join("通知.pdf");
        std::fs::write(&file, b"x").unwrap();
        let sidecar = dir.join("通知.pdf.meta.toml");
        std::fs::write(&sidecar, b"title = \"t\"").unwrap();
        let drop = Drop {
            to: "harbin-gov".into(),
            name: "通知.pdf".into(),
            path: file.clone(),
            is_folder: false,
            is_symlink: false,
        };
        // The clerk deletes it right after the scan saw it.
        std::fs::remove_file(&file).unwrap();
        let err = claim(&f, &drop).unwrap_err().to_string();
        assert!(err.contains("could not be taken"), "{err}");
        assert_eq!(
            std::fs::read_dir(&f.spool).unwrap().count(),
            0,
            "a half claim remains"
        );
        assert!(sidecar.exists(), "the sidecar is back in the outbox");
    }

    #[test]
    fn drops_claimed_together_move_with_their_sidecars_and_a_vanished_one_undoes_only_itself() {
        let d = tempfile::tempdir().unwrap();
        let f = Folders::new(d.path());
        f.create().unwrap();
        let dir = f.outbox.join("harbin-gov");
        std::fs::create_dir(&dir).unwrap();
        let drop = |name: &str, is_folder| Drop {
            to: "harbin-gov".into(),
            name: name.into(),
            path: dir.join(name),
            is_folder,
            is_symlink: false,
        };
        std::fs::write(dir.join("a.txt"), b"a").unwrap();
        std::fs::write(dir.join("b.txt"), b"b").unwrap();
        std::fs::write(dir.join("b.txt.meta.toml"), b"title = \"b\"").unwrap();
        std::fs::create_dir(dir.join("会议材料")).unwrap();
        std::fs::write(dir.join("会议材料/正文.txt"), b"m").unwrap();
        std::fs::write(dir.join("会议材料/附件.txt"), b"n").unwrap();
        std::fs::write(dir.join("gone.txt.meta.toml"), b"title = \"g\"").unwrap();
        let drops = [
            drop("a.txt", false),
            drop("b.txt", false),
            drop("会议材料", true),
            drop("gone.txt", false), // deleted after the scan saw it
        ];
        let all: Vec<&Drop> = drops.iter().collect();
        let results = claim_all(&f, &all);
        let err = results[3].as_ref().unwrap_err().to_string();
        assert!(err.contains("could not be taken"), "{err}");
        let ids: Vec<DocId> = results[..3].iter().map(|r| *r.as_ref().unwrap()).collect();
        // Only the vanished drop's sidecar is left in the outbox.
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("gone.txt.meta.toml")]);
        let spool = |id: &DocId| f.spool.join(id.to_string());
        assert_eq!(
            std::fs::read(spool(&ids[0]).join("files/a.txt")).unwrap(),
            b"a"
        );
        assert!(spool(&ids[1]).join("meta.toml").exists());
        assert!(!spool(&ids[0]).join("meta.toml").exists());
        assert_eq!(
            std::fs::read_dir(spool(&ids[2]).join("files"))
                .unwrap()
                .count(),
            2
        );
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(claimed(&f).unwrap(), sorted);
        // Complete claims: recovery at start keeps every one.
        assert_eq!(recover(&f).unwrap(), sorted);
    }

    #[test]
    fn claim_moves_the_drop_and_recover_undoes_half_claims() {
        let d = tempfile::tempdir().unwrap();
        let f = Folders::new(d.path());
        f.create().unwrap();
        std::fs::create_dir(f.outbox.join("harbin-gov")).unwrap();
        let file = f.outbox.join("harbin-gov").join("通知.pdf");
        std::fs::write(&file, b"x").unwrap();
        std::fs::write(sidecar_path(&file), b"title = \"t\"").unwrap();
        let drop = Drop {
            to: "harbin-gov".into(),
            name: "通知.pdf".into(),
            path: file.clone(),
            is_folder: false,
            is_symlink: false,
        };
        let id = claim(&f, &drop).unwrap();
        assert!(!file.exists());
        let dir = f.spool.join(id.to_string());
        assert!(dir.join("files/通知.pdf").exists() && dir.join("meta.toml").exists());
        assert_eq!(recover(&f).unwrap(), vec![id]);

        // A claim being made right now (claim.json written, file not moved
        // yet) is not listed for sending, and left alone.
        std::fs::write(&file, b"y").unwrap();
        let half = half_claim(&f, "通知.pdf");
        assert_eq!(claimed(&f).unwrap(), vec![id]);
        assert!(half.join("claim.json").exists() && file.exists());
        std::fs::remove_dir_all(&half).unwrap();

        // At start, a claim interrupted before the file moved is undone.
        std::fs::write(&file, b"y").unwrap();
        let half = half_claim(&f, "通知.pdf");
        assert_eq!(recover(&f).unwrap(), vec![id]);
        assert!(!half.exists() && file.exists());

        let mut to = Vec::new();
        let failed = fail_claimed(&f, id, "交换中心不认识收文单位", |_, t, _| {
            to = t.to_vec();
            Ok(())
        })
        .unwrap();
        assert_eq!(to, vec!["harbin-gov".to_owned()]);
        assert_eq!(std::fs::read(&failed).unwrap(), b"x");
        assert!(!dir.exists());
        let err = std::fs::read_to_string(format!("{}{ERROR_SUFFIX}", failed.display())).unwrap();
        assert!(err.contains("交换中心不认识收文单位") && err.contains("主送 harbin-gov"));
        assert!(sidecar_path(&failed).exists());
    }
}
