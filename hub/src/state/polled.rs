//! Two small owners the hub's reloadable state shares: a file read on a
//! timer that says when its bytes changed ([`PolledFile`]), and a value
//! replaced whole that readers take as one ([`Swapped`]).
//!
//! Files such as the CRL and the unit directory are replaced by rename,
//! which file-system watchers report unreliably; reading a few kilobytes
//! once a second is cheap and certain.

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
    read_error_reported: bool,
}

impl PolledFile {
    /// Start from the file's bytes now (what the caller loaded at start).
    pub async fn new(path: &Path, what: &'static str) -> PolledFile {
        PolledFile {
            path: path.to_owned(),
            what,
            last: tokio::fs::read(path).await.ok(),
            read_error_reported: false,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The new bytes if the file changed since the last look; a file that
    /// cannot be read is reported once (the caller keeps what it has).
    pub async fn changed(&mut self) -> Option<Vec<u8>> {
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
