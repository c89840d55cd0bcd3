//! Two small owners the hub's reloadable state shares: a file read on a
//! timer that says when its bytes changed ([`PolledFile`]), and a value
//! replaced whole that readers take as one ([`Swapped`]).
//!
//! Files such as the CRL and the unit directory are replaced by rename,
//! which file-system watchers report unreliably; looking at a file's
//! metadata once a second is cheap and certain, and its bytes are read
//! only when the metadata changed (a national directory is tens of
//! megabytes).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tracing::error;

/// A file read on each [`PolledFile::changed`] call.
#[derive(Debug)]
pub struct PolledFile {
    path: PathBuf,
    /// What it is, for messages ("the revocation list").
    what: &'static str,
    last: Option<Vec<u8>>,
    /// The metadata the file had when `last` was read.
    seen: Option<Stamp>,
    read_error_reported: bool,
}

/// What changes when a file is replaced or written: its inode, size and
/// modification time.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    modified: Option<std::time::SystemTime>,
}

impl Stamp {
    /// Whether the file was last written long enough ago that a write
    /// since would show in the stamp: file times tick in steps of a few
    /// milliseconds, so a file written twice within one step, at the same
    /// size, looks unchanged (git's "racy" files). Such a file is read.
    fn settled(&self) -> bool {
        self.modified
            .and_then(|m| m.elapsed().ok())
            .is_some_and(|age| age > std::time::Duration::from_secs(2))
    }

    async fn of(path: &Path) -> Option<Stamp> {
        use std::os::unix::fs::MetadataExt;
        let m = tokio::fs::metadata(path).await.ok()?;
        Some(Stamp {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            modified: m.modified().ok(),
        })
    }
}

impl PolledFile {
    /// Start from the file's bytes now (what the caller loaded at start).
    pub async fn new(path: &Path, what: &'static str) -> PolledFile {
        let seen = Stamp::of(path).await;
        PolledFile {
            path: path.to_owned(),
            what,
            last: tokio::fs::read(path).await.ok(),
            seen,
            read_error_reported: false,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The new bytes if the file changed since the last look; a file that
    /// cannot be read is reported once (the caller keeps what it has).
    pub async fn changed(&mut self) -> Option<Vec<u8>> {
        let stamp = Stamp::of(&self.path).await;
        if stamp.as_ref().is_some_and(Stamp::settled) && stamp == self.seen {
            return None;
        }
        // Taken before the read: a write during it changes the stamp again,
        // and the next look reads once more.
        self.seen = stamp;
        match tokio::fs::read(&self.path).await {
            Err(e) => {
                if !self.read_error_reported {
                    error!(
                        "cannot read {} {}: {e}; keeping the previous one",
                        self.what,
                        self.path.display()
                    );
                    self.read_error_reported = true;
                }
                None
            }
            Ok(bytes) if self.last.as_ref() != Some(&bytes) => {
                self.read_error_reported = false;
                self.last = Some(bytes.clone());
                Some(bytes)
            }
            Ok(_) => None,
        }
    }
}

/// A value replaced whole; a reader holds one version for as long as it
/// needs it, never a mix of two.
#[derive(Debug, Default)]
pub struct Swapped<T> {
    current: Mutex<Arc<T>>,
}

impl<T> Swapped<T> {
    pub fn new(value: T) -> Swapped<T> {
        Swapped {
            current: Mutex::new(Arc::new(value)),
        }
    }

    /// The value now. (A panic while the lock was held leaves a whole Arc
    /// behind, so a poisoned lock is still good.)
    pub fn current(&self) -> Arc<T> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn replace(&self, value: T) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(value);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_polled_file_says_when_it_changed_and_only_then() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crl.pem");
        std::fs::write(&path, b"one").unwrap();
        let mut f = PolledFile::new(&path, "the test file").await;
        assert_eq!(f.changed().await, None);
        std::fs::write(&path, b"two").unwrap();
        assert_eq!(f.changed().await.as_deref(), Some(&b"two"[..]));
        assert_eq!(f.changed().await, None);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(f.changed().await, None);
        std::fs::write(&path, b"two").unwrap();
        assert_eq!(
            f.changed().await,
            None,
            "the same bytes again are no change"
        );
    }

    #[test]
    fn a_reader_keeps_its_version() {
        let s = Swapped::new(1);
        let held = s.current();
        s.replace(2);
        assert_eq!((*held, *s.current()), (1, 2));
    }
}
