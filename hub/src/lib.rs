//! # gongwen-hub
//!
//! The daemon every unit's agent connects to. It admits only agents whose
//! certificate chains to the deployment's CA and is not revoked, takes the
//! node id and role from that certificate alone, and answers supervisors'
//! queries over a local control socket.
//!
//! ```text
//!            UDP (rcvbuf raised)                       <data_dir>/hub.sock (0600)
//! agents ──▶ quinn Endpoint ──▶ server::admit ──▶ Registry ◀── control (nodes, …)
//!                  ▲                                  ▲
//!                  └──── revocation watcher ──────────┘
//!                        (new CRL → new handshakes refused, live connections cut)
//! ```
//!
//! ## Layout
//! - [`server`] — [`Hub::bind`] and [`Hub::run`]: the socket, the accept
//!   loop, and admission of each connection (handshake, hello, welcome).
//! - [`admission`] — who gets in (pure): the handshake gate with QUIC
//!   Retry, the certificate judged at admission, the pre-welcome bounds.
//! - [`loglimit`] — warnings about peers, rate-limited per peer.
//! - [`registry`] — which nodes the hub knows and which are connected.
//! - [`revocation`] — watches the CRL file; reloads, cuts revoked nodes,
//!   fails closed when the list is stale.
//! - [`session`] — one agent's requests (keys, lookup, uploads, receipts)
//!   and the hub's pushes to it (documents, receipts, CRL).
//! - [`store`] — the redb store: documents, queues, receipts, bindings.
//! - [`spool`] — ciphertext files, written durably before `accepted`.
//! - [`escalation`] — when to urge and when to escalate (pure).
//! - [`scheduler`] — runs the escalation ladder on the injected clock.
//! - [`supervision`] — status, overdue and report over the records (pure).
//! - [`audit`] — the append-only, hash-chained receipt log.
//! - [`control`] — the local query socket and its client.
//! - [`error`] — [`HubError`].
#![forbid(unsafe_code)]

pub mod admission;
pub mod audit;
pub mod commit;
pub mod control;
pub mod error;
pub mod escalation;
pub mod loglimit;
pub mod registry;
pub mod revocation;
pub mod scheduler;
pub mod server;
pub mod session;
pub mod spool;
pub mod store;
pub mod supervision;

pub use error::HubError;
pub use server::{Hub, HubHandle};
