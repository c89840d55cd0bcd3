//! What the agent's link to the hub is doing: one value, published by the
//! connection loop on a watch channel and read by the console, `/metrics`
//! and tests.

use std::net::SocketAddr;
use std::time::Duration;

use gongwen_common::NodeId;

use crate::rules::link_error::LinkError;

/// What the agent's link to the hub is doing, for status displays and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    /// The first attempt has not finished yet.
    Starting,
    /// Admitted by the hub.
    Connected {
        hub: NodeId,
        addr: SocketAddr,
        /// When (this machine's clock, Unix ms).
        since_ms: i64,
        /// This machine's clock minus the hub's at the welcome (ms).
        clock_offset_ms: i64,
    },
    /// Not connected; `error` says why, the agent retries by itself.
    Disconnected {
        error: LinkError,
        retry_in: Duration,
    },
}
