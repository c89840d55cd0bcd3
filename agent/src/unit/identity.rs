//! Who this unit is and where its files are: the configuration, the
//! folders, the certificate in use and its renewal, the key that opens
//! documents sealed to us, the CA and CRL in force, and this machine's
//! clock. Set up once at start; the parts that change (a renewal, a new
//! CRL) change inside their own owners.

use std::sync::Arc;

use gongwen_common::NodeId;
use gongwen_common::clock::Clock;
use gongwen_common::config::AgentConfig;
use gongwen_common::envelope::DocumentKey;
use gongwen_common::pki::{Crl, PkiError};

use crate::unit::credentials::{Credentials, OwnKeys};
use crate::unit::folders::Folders;
use crate::unit::trust::Trust;

pub struct Identity {
    config: AgentConfig,
    folders: Folders,
    /// The certificate in use (signs documents and receipts; shown to the
    /// hub), and its renewal.
    credentials: Credentials,
    /// Opens documents sealed to this unit (X25519, or SM2 in a GM
    /// deployment).
    enc_key: DocumentKey,
    trust: Trust,
    /// This machine's clock: times the agent records and certificate
    /// validity. (Deadlines follow the hub's clock, not this one.)
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("node", &self.config.node_id)
            .finish()
    }
}

impl Identity {
    pub fn new(
        config: AgentConfig,
        folders: Folders,
        own: OwnKeys,
        enc_key: DocumentKey,
        clock: Arc<dyn Clock>,
    ) -> Result<Identity, PkiError> {
        // The last CRL the hub sent, if any; the hub sends a fresh one on
        // every connection.
        let crl = std::fs::read(folders.crl())
            .ok()
            .and_then(|der| Crl::parse(&der, &own.ca).ok());
        let trust = Trust::new(own.ca.clone(), crl.as_ref())?;
        let credentials = Credentials::new(own, &trust.checker(), clock.clone(), &folders.state)?;
        Ok(Identity {
            config,
            folders,
            credentials,
            enc_key,
            trust,
            clock,
        })
    }

    pub fn node_id(&self) -> &NodeId {
        &self.config.node_id
    }

    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    pub fn folders(&self) -> &Folders {
        &self.folders
    }

    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    pub fn enc_key(&self) -> &DocumentKey {
        &self.enc_key
    }

    pub fn trust(&self) -> &Trust {
        &self.trust
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Milliseconds since the Unix epoch by this agent's clock.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }
}
