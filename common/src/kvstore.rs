//! What the hub's and the agents' redb stores share: opening without ever
//! silently starting over, JSON records, and running blocking store work
//! off the async threads.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("the store {path} cannot be opened: {detail}")]
    Open { path: String, detail: String },
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
            StoreError::Db(redb::Error::Io(_)) | StoreError::Db(redb::Error::PreviousIo)
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
    .map_err(|e| StoreError::Open {
        path: shown,
        detail: e.to_string(),
    })
}

pub fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Record(e.to_string()))
}

pub fn from_json<T: for<'de> Deserialize<'de>>(b: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(b).map_err(|e| StoreError::Record(e.to_string()))
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
