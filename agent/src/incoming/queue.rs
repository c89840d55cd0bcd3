//! What arrives from the hub waiting to be made durable: received
//! documents to record, and receipts from our recipients. Each queue is
//! committed in batches (group commit).

use std::sync::Arc;

use crate::incoming::receipts::ReceiptJob;
use crate::incoming::receive::RecordJob;
use crate::unit::batch::Batches;

#[derive(Debug, Default)]
pub struct Incoming {
    recording: Arc<Batches<RecordJob>>,
    receipts: Arc<Batches<ReceiptJob>>,
}

impl Incoming {
    /// Received documents waiting to be recorded.
    pub fn recording(&self) -> &Arc<Batches<RecordJob>> {
        &self.recording
    }

    /// Receipts from recipients waiting to be recorded.
    pub fn receipts(&self) -> &Arc<Batches<ReceiptJob>> {
        &self.receipts
    }
}
