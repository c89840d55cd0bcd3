//! What the agent counts as it works: read by `/metrics`, and by tests
//! that must show something was tried before they check that it did not
//! happen (a positive barrier, not a pause).

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Counters {
    /// Looks at the outbox (an idle agent must stay idle).
    outbox_scans: AtomicU64,
    /// Rounds of the uploader finished: queued answers given, the spool
    /// sent or refused.
    send_rounds: AtomicU64,
    /// Deliveries this unit could not store (a full disk, say): the hub
    /// keeps them and tries again.
    deliveries_refused: AtomicU64,
}

impl Counters {
    pub fn outbox_scanned(&self) {
        self.outbox_scans.fetch_add(1, Ordering::Relaxed);
    }

    pub fn send_round_done(&self) {
        self.send_rounds.fetch_add(1, Ordering::Relaxed);
    }

    pub fn delivery_refused(&self) {
        self.deliveries_refused.fetch_add(1, Ordering::Relaxed);
    }

    pub fn outbox_scans(&self) -> u64 {
        self.outbox_scans.load(Ordering::Relaxed)
    }

    pub fn send_rounds(&self) -> u64 {
        self.send_rounds.load(Ordering::Relaxed)
    }

    pub fn deliveries_refused(&self) -> u64 {
        self.deliveries_refused.load(Ordering::Relaxed)
    }
}
