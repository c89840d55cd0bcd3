//! The hub's current view of revocation: the CRL and the checker built
//! from it, swapped together as one value so no reader ever pairs a new
//! list with an old checker.

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
pub type Trust = crate::state::polled::Swapped<TrustState>;
