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
//! The folders are the layers, in this order; a module uses only the
//! layers before its own, and no two files import each other.
//! - `rules/` — plain functions over values, tested without files or
//!   sockets: [`rules::addressing`] (who a drop goes to), [`rules::answering`]
//!   (whether a document may answer another), [`rules::copy_state`] (where a
//!   sent copy stands, from its receipts), [`rules::backoff`],
//!   [`rules::link_error`] (why a link failed, in plain words),
//!   [`rules::metadata`] (`metadata.json`).
//! - `unit/` — what the unit owns, one owner each: [`unit::identity`] (who
//!   we are: configuration, folders, keys, trust, clock), [`unit::store`],
//!   [`unit::holds`] (documents being worked on), [`unit::outgoing`] (the
//!   claim lock and the uploader's wake), [`unit::hub_link`] (the
//!   connection and asking the hub), [`unit::directory`] (the address
//!   book), [`unit::accounts`] (console users and tokens),
//!   [`unit::counters`] (what the agent counts), and the parts
//!   they are made of ([`unit::folders`], [`unit::credentials`],
//!   [`unit::trust`], [`unit::keygen`], [`unit::batch`]).
//! - `incoming/` — from the hub: [`incoming::receive`] (a document, by
//!   the decisions of [`incoming::plan`]),
//!   [`incoming::receipts`] (our recipients' receipts), [`incoming::clerk`]
//!   (签收/退回 recorded and handed to the hub; 催办, 督办, 撤回 taken).
//! - `outgoing/` — to the hub: [`outgoing::outbox`] (drops claimed into
//!   the spool), [`outgoing::draft`], [`outgoing::stamp`],
//!   [`outgoing::send`] (seal, upload, file under `sent/`),
//!   [`outgoing::status`] (what became of what we sent).
//! - `actions/` — the clerk's acts, written once in [`actions::clerk`] for
//!   every front door; [`actions::reply`], [`actions::forward`],
//!   [`actions::collect`] (汇总), [`actions::evidence`].
//! - [`parts`] — every owner of a running agent, built once.
//! - `link/` — [`link::client`] (connect, hello, reconnect),
//!   [`link::session`] (one admitted connection's work), [`link::state`].
//! - `front/` — the front doors: [`front::control`] (the local socket),
//!   [`front::console`] (the web console: its pages, its serve loop, its
//!   logins and sessions), [`front::metrics`].
//! - [`agent`] — [`Agent`]: the composition, built from the configuration
//!   and run.
//! - [`error`] — [`AgentError`].
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

pub mod actions;
pub mod agent;
pub mod error;
pub mod front;
pub mod incoming;
pub mod link;
pub mod outgoing;
pub mod parts;
pub mod rules;
pub mod unit;

pub use agent::Agent;
pub use error::AgentError;
pub use link::state::LinkState;
pub use rules::link_error::LinkError;
