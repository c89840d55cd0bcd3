//! # gongwen-agent
//!
//! The daemon at each unit. It keeps one QUIC connection to the hub,
//! authenticated both ways with certificates from the deployment's CA, and
//! is admitted only when the hub answers its hello with a welcome.
//!
//! ```text
//! Agent::run ── resolve hub ── QUIC + mTLS handshake ── hello ─▶ hub
//!     ▲                                                ◀─ welcome
//!     │  connection ends (hub restart, revoked, network)      │
//!     └──── capped exponential backoff with jitter ◀──────────┘
//! ```
//!
//! ## Layout
//! - [`client`] — [`Agent`]: the connection loop and [`LinkState`].
//! - [`link_error`] — [`LinkError`], why a connection failed, in plain words,
//!   classified from QUIC/TLS errors by pure functions.
//! - [`backoff`] — the reconnect schedule.
//! - [`batch`] — group commit: writes that arrive together, made durable
//!   together.
//! - [`keygen`] — a key and CSR made on the unit's own machine.
//! - [`console`] — the unit's web console (`[console] listen`).
//! - [`directory`] — the units and groups to send to; outbox folders and
//!   `单位名录.txt` made from them.
//! - [`trust`] — the CA and the CRL in force, swapped as one value.
//! - [`error`] — [`AgentError`].
#![forbid(unsafe_code)]

pub mod addressing;
pub mod backoff;
pub mod batch;
pub mod clerk;
pub mod client;
pub mod collect;
pub mod console;
pub mod context;
pub mod control;
pub mod credentials;
pub mod directory;
pub mod draft;
pub mod error;
pub mod evidence;
pub mod forward;
pub mod inbox;
pub mod keygen;
pub mod link_error;
pub mod metadata;
pub mod observe;
pub mod outbox;
pub mod reply;
pub mod sender;
pub mod session;
pub mod stamp;
pub mod state;
pub mod store;
pub mod trust;

pub use client::{Agent, LinkState};
pub use error::AgentError;
pub use link_error::LinkError;
