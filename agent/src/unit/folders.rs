//! The agent's folders, and the keys and lists it keeps between runs.
//!
//! ```text
//! <root>/outbox/<to>/<file>      clerks drop documents here
//! <root>/sent/<doc_id>/          what the hub accepted (files + metadata.json)
//! <root>/failed/<file>           what could not be sent, with <file>.error.txt
//! <root>/inbox/<sender>/<doc_id>/ received documents (files + metadata.json)
//! <root>/quarantine/<doc_id>/    received documents that failed verification
//! <root>/recalled/<sender>/<doc_id>/ documents their sender withdrew (never deleted)
//! <root>/state/                  agent.redb, enc.key (0600), crl.der,
//!                                spool/ (claimed outgoing), incoming/ (partial downloads),
//!                                agent.sock (control, 0600)
//! ```

use std::path::{Path, PathBuf};

use gongwen_common::envelope::EncryptionKey;
use gongwen_common::fsutil::{create_private_dir, write_new};

use crate::error::AgentError;

/// Every path the agent uses under its root.
#[derive(Debug, Clone)]
pub struct Folders {
    pub root: PathBuf,
    pub outbox: PathBuf,
    pub sent: PathBuf,
    pub failed: PathBuf,
    pub inbox: PathBuf,
    pub quarantine: PathBuf,
    pub recalled: PathBuf,
    pub state: PathBuf,
    pub spool: PathBuf,
    pub incoming: PathBuf,
}

impl Folders {
    pub fn new(root: &Path) -> Folders {
        let state = root.join("state");
        Folders {
            root: root.to_owned(),
            outbox: root.join("outbox"),
            sent: root.join("sent"),
            failed: root.join("failed"),
            inbox: root.join("inbox"),
            quarantine: root.join("quarantine"),
            recalled: root.join("recalled"),
            spool: state.join("spool"),
            incoming: state.join("incoming"),
            state,
        }
    }

    /// Create every folder (state private to the agent's user). Clerks
    /// (the agent's group) may write only where they put things: the
    /// outbox and `failed/` are made group-writable with the sticky bit
    /// (nobody but its owner and the agent moves a file there) and the
    /// set-group-id bit (what is dropped stays the agent's group's); the
    /// rest follows the umask, so under systemd (`UMask=0027`) clerks read
    /// the inbox and `sent/` but cannot rename `state/` or anything else.
    pub fn create(&self) -> Result<(), AgentError> {
        let dir_err = |path: &Path| {
            let path = path.to_owned();
            move |source| AgentError::Dir { path, source }
        };
        for d in [
            &self.outbox,
            &self.sent,
            &self.failed,
            &self.inbox,
            &self.quarantine,
        ] {
            std::fs::create_dir_all(d).map_err(dir_err(d))?;
        }
        for d in [&self.outbox, &self.failed] {
            clerks_drop_here(d).map_err(dir_err(d))?;
        }
        for d in [&self.state, &self.spool, &self.incoming] {
            create_private_dir(d).map_err(dir_err(d))?;
        }
        Ok(())
    }

    pub fn store(&self) -> PathBuf {
        self.state.join("agent.redb")
    }

    pub fn crl(&self) -> PathBuf {
        self.state.join("crl.der")
    }

    pub fn control_socket(&self) -> PathBuf {
        self.state.join("agent.sock")
    }

    /// Whether documents were ever sent or received here.
    pub fn has_history(&self) -> bool {
        let non_empty = |d: &Path| std::fs::read_dir(d).is_ok_and(|mut e| e.next().is_some());
        non_empty(&self.sent) || non_empty(&self.inbox)
    }
}

/// The mode of a folder clerks drop files into: group-writable, sticky,
/// set-group-id.
pub const DROP_FOLDER_MODE: u32 = 0o3770;

/// Make `dir` a folder clerks drop files into ([`DROP_FOLDER_MODE`]).
pub fn clerks_drop_here(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir)?.permissions().mode() & 0o7777;
    if mode != DROP_FOLDER_MODE {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DROP_FOLDER_MODE))?;
    }
    Ok(())
}

/// Load the X25519 key made for this unit at enrollment
/// (`[tls] encryption_key`); it must exist — the hub already hands out its
/// public half.
pub fn enrolled_encryption_key(path: &Path) -> Result<EncryptionKey, AgentError> {
    match std::fs::read(path) {
        Ok(bytes) => EncryptionKey::from_secret_bytes(&bytes).map_err(|_| AgentError::Damaged {
            path: path.to_owned(),
            detail: "not a 32-byte X25519 key (the <id>.enc.key of the enrollment bundle)".into(),
        }),
        Err(source) => Err(AgentError::Read {
            path: path.to_owned(),
            what: "tls.encryption_key",
            source,
        }),
    }
}

/// Load this unit's X25519 key, making one on first start.
pub fn encryption_key(state: &Path) -> Result<EncryptionKey, AgentError> {
    let path = state.join("enc.key");
    match std::fs::read(&path) {
        Ok(bytes) => EncryptionKey::from_secret_bytes(&bytes).map_err(|_| AgentError::Damaged {
            path,
            detail: "not a 32-byte X25519 key".into(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = EncryptionKey::generate().map_err(|e| AgentError::Damaged {
                path: path.clone(),
                detail: e.to_string(),
            })?;
            write_new(&path, &key.secret_bytes(), 0o600)
                .map_err(|source| AgentError::Write { path, source })?;
            Ok(key)
        }
        Err(source) => Err(AgentError::Write { path, source }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn clerks_may_write_only_into_the_outbox_and_failed_and_never_into_state() {
        let d = tempfile::tempdir().unwrap();
        let f = Folders::new(d.path());
        f.create().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&f.outbox), DROP_FOLDER_MODE);
        assert_eq!(mode(&f.failed), DROP_FOLDER_MODE);
        assert_eq!(mode(&f.state) & 0o077, 0, "state/ is the agent's alone");
        for d in [&f.inbox, &f.sent] {
            assert_eq!(mode(d) & 0o020, 0, "{} is group-writable", d.display());
        }
    }
}
