//! A request the hub refuses, and the words the agent gets for it.

use gongwen_common::logsafe::Clipped;
use gongwen_common::wire::ErrorCode;

use crate::store::StoreError;

/// A refusal to send back to the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

impl Refusal {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Refusal {
            code,
            message: message.into(),
        }
    }

    /// A document, receipt or key binding whose signature or signer did not
    /// pass: final, unless the signer merely cannot be judged now.
    pub fn signature(e: gongwen_common::envelope::EnvelopeError) -> Self {
        let code = if e.is_transient() {
            ErrorCode::NotNow
        } else {
            ErrorCode::BadSignature
        };
        Refusal::new(code, e.to_string())
    }

    /// A refusal the unit sent: its words, escaped and cut for the log.
    pub fn from_peer(code: ErrorCode, message: &str) -> Self {
        Refusal::new(code, Clipped(message).to_string())
    }
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        tracing::error!("store: {e}");
        if matches!(e, StoreError::Database(_)) {
            Refusal::new(
                ErrorCode::Storage,
                "the hub cannot reach its database now; the agent keeps the document and retries",
            )
        } else if e.is_storage() {
            Refusal::new(
                ErrorCode::Storage,
                "the hub cannot store this now (its disk may be full or failing); the agent keeps the document and retries",
            )
        } else {
            // Not the disk: say what failed rather than blame free space.
            // The agent still keeps the document and retries.
            Refusal::new(
                ErrorCode::Internal,
                format!("the hub's store failed ({e}); the hub's operator should look at its log"),
            )
        }
    }
}
