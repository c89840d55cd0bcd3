//! The hub's current view of revocation: the CRL and the checker built
//! from it, swapped together as one value so no reader ever pairs a new
//! list with an old checker.

use std::sync::{Arc, Mutex};

use gongwen_common::pki::{CertChecker, Crl};

/// One CRL and the checker that enforces it.
#[derive(Debug)]
pub struct TrustState {
    pub crl: Crl,
    /// Checks signers of documents, receipts and key bindings against the
    /// CA and this CRL.
    pub checker: CertChecker,
}

/// The current [`TrustState`], replaced whole when the CRL changes.
#[derive(Debug)]
pub struct Trust {
    current: Mutex<Arc<TrustState>>,
}

impl Trust {
    pub fn new(state: TrustState) -> Trust {
        Trust {
            current: Mutex::new(Arc::new(state)),
        }
    }

    /// The state now; it stays whole while the caller holds it.
    pub fn current(&self) -> Arc<TrustState> {
        // A panic while holding the lock leaves a whole Arc behind.
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn replace(&self, state: TrustState) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(state);
    }
}
