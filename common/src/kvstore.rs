//! What the hub's and the agents' redb stores share: opening without ever
//! silently starting over, JSON records, and running blocking store work
//! off the async threads.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error(
        "the store {path} cannot be opened: {detail}. It is not replaced; restore it from a backup (moving it away would start an empty store and lose its records)"
    )]
    Open { path: String, detail: String },
    #[error(
        "the store {path} is in use by another process: is another gongwen program already running on this data directory?"
    )]
    InUse { path: String },
    #[error(
        "the store {path} is missing but {evidence}; refusing to start with an empty store (restore the file from backup)"
    )]
    Missing {
        path: String,
        evidence: &'static str,
    },
    #[error("store: {0}")]
    Db(#[from] redb::Error),
    #[error("store record is damaged: {0}")]
    Record(String),
    #[error("the store task failed: {0}")]
    Task(String),
    /// The hub's PostgreSQL store: unreachable, failed over, or refusing.
    #[error("the database: {0}")]
    Database(String),
    /// A file beside the database (spool, audit log) could not be written.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

impl StoreError {
    /// True when the cause is the disk (full, I/O error): worth retrying.
    pub fn is_storage(&self) -> bool {
        matches!(
            self,
            StoreError::Db(redb::Error::Io(_))
                | StoreError::Db(redb::Error::PreviousIo)
                | StoreError::Io(_)
        )
    }
}

/// Open the database at `path`. A missing file is created only when
/// `fresh_ok`; otherwise `evidence` says why a store should exist. A
/// damaged file is an error, never replaced.
pub fn open(
    path: &Path,
    fresh_ok: bool,
    evidence: &'static str,
) -> Result<redb::Database, StoreError> {
    let shown = path.display().to_string();
    if path.exists() {
        redb::Database::open(path)
    } else if fresh_ok {
        redb::Database::create(path)
    } else {
        return Err(StoreError::Missing {
            path: shown,
            evidence,
        });
    }
    .map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => StoreError::InUse { path: shown },
        e => StoreError::Open {
            path: shown,
            detail: e.to_string(),
        },
    })
}

pub fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Record(e.to_string()))
}

pub fn from_json<T: for<'de> Deserialize<'de>>(b: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(b).map_err(|e| StoreError::Record(e.to_string()))
}

/// A redb database that is opened again after an I/O failure.
///
/// After one failed write (a full disk, an I/O error) redb answers every
/// later call with `PreviousIo` until the file is closed and reopened. A
/// hub whose disk filled up once would then refuse everything until it was
/// restarted, even after space was freed. Here a transaction that cannot
/// begin for that reason drops the spent handle and opens the file again
/// (redb's recovery then runs as after a crash); the caller of the failed
/// write already got its error and retries as usual.
pub struct Db {
    path: PathBuf,
    current: Mutex<Option<Arc<redb::Database>>>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Db({})", self.path.display())
    }
}

impl Db {
    pub fn new(path: &Path, db: redb::Database) -> Db {
        Db {
            path: path.to_owned(),
            current: Mutex::new(Some(Arc::new(db))),
        }
    }

    fn handle(&self) -> Result<Arc<redb::Database>, StoreError> {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(db) = current.as_ref() {
            return Ok(db.clone());
        }
        // Still locked while a transaction of the spent handle lives: the
        // caller gets the error and a later call tries again.
        let db = Arc::new(open(&self.path, false, "it was open a moment ago")?);
        tracing::info!("store {} reopened after an I/O error", self.path.display());
        *current = Some(db.clone());
        Ok(db)
    }

    fn spent(&self, e: &redb::TransactionError) -> bool {
        let spent = matches!(
            e,
            redb::TransactionError::Storage(redb::StorageError::PreviousIo)
        );
        if spent {
            tracing::warn!(
                "store {}: an earlier write failed; reopening it",
                self.path.display()
            );
            self.current
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
        }
        spent
    }

    // The handle is dropped before `spent` runs: the file lock goes with
    // the last handle, and the reopen needs it.
    pub fn begin_write(&self) -> Result<redb::WriteTransaction, StoreError> {
        let first = self.handle()?.begin_write();
        match first {
            Err(e) if self.spent(&e) => Ok(self.handle()?.begin_write()?),
            r => Ok(r?),
        }
    }

    pub fn begin_read(&self) -> Result<redb::ReadTransaction, StoreError> {
        use redb::ReadableDatabase;
        let first = self.handle()?.begin_read();
        match first {
            Err(e) if self.spent(&e) => Ok(self.handle()?.begin_read()?),
            r => Ok(r?),
        }
    }
}

/// Run blocking store work on the blocking pool.
pub async fn blocking<S: Clone + Send + 'static, T: Send + 'static>(
    store: &S,
    f: impl FnOnce(&S) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const T: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("t");

    /// Fill a small tmpfs with the store itself until a commit fails, free
    /// space, and write again. Skipped (with a message) where mounting a
    /// tmpfs is not permitted.
    #[test]
    fn a_store_works_again_after_a_full_disk_is_freed() {
        let d = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
            .arg(d.path())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("SKIPPED: cannot mount a small tmpfs here (needs root)");
            return;
        }
        let unmount = || {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(d.path())
                .status();
        };
        let result = std::panic::catch_unwind(|| {
            let filler = d.path().join("filler");
            std::fs::write(&filler, vec![0u8; 3 << 20]).unwrap();
            let path = d.path().join("store.redb");
            let db = Db::new(&path, open(&path, true, "").unwrap());
            let value = vec![7u8; 256 << 10];
            let mut failed = false;
            for i in 0..64u64 {
                let w = db.begin_write();
                let Ok(w) = w else {
                    failed = true;
                    break;
                };
                let put = w.open_table(T).map_err(StoreError::from).and_then(|mut t| {
                    t.insert(i, value.as_slice())
                        .map(|_| ())
                        .map_err(StoreError::from)
                });
                if put.is_err() || w.commit().is_err() {
                    failed = true;
                    break;
                }
            }
            assert!(failed, "the disk never filled");
            std::fs::remove_file(&filler).unwrap();
            // Space again: the store takes writes without a restart.
            let w = db.begin_write().expect("a write after space was freed");
            w.open_table(T)
                .unwrap()
                .insert(1000, b"after".as_slice())
                .unwrap();
            w.commit().unwrap();
            let r = db.begin_read().unwrap();
            let t = r.open_table(T).unwrap();
            assert_eq!(t.get(1000).unwrap().unwrap().value(), b"after");
        });
        unmount();
        if let Err(p) = result {
            std::panic::resume_unwind(p);
        }
    }
}
