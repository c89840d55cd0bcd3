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
//! The folders are the layers; a module uses the ones above it in this list,
//! never the ones below.
//! - `rules/` — plain functions over values, tested without files or
//!   sockets: addressing, backoff, why a link failed, the metadata sidecar.
//! - `unit/` — what the unit owns on disk: its folders, its store, its
//!   credentials and trust, the address book.
//! - `outgoing/` — drops in `outbox/`, the spool, sending to the hub.
//! - `incoming/` — documents and receipts arriving from the hub.
//! - `actions/` — the clerk's acts, written once for every front door.
//! - `link/` — the one QUIC connection to the hub and its session.
//! - `front/` — the front doors: the control socket, the console, `/metrics`.
//! - [`error`] — [`AgentError`].
#![forbid(unsafe_code)]

pub mod actions;
pub mod error;
pub mod front;
pub mod incoming;
pub mod link;
pub mod outgoing;
pub mod parts;
pub mod rules;
pub mod unit;

pub use error::AgentError;
pub use link::client::{Agent, LinkState};
pub use rules::link_error::LinkError;
