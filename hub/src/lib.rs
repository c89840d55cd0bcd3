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
//! Leaves first; each module uses only those above it.
//! - [`lifecycle`] — one recipient's copy from queued to closed (pure).
//! - [`escalation`] — when to urge and when to escalate (pure).
//! - [`supervision`] — status, overdue and report over the records (pure).
//! - [`admission`] — who gets in (pure): the handshake gate with QUIC
//!   Retry, the certificate judged at admission, the pre-welcome bounds.
//! - [`loglimit`] — warnings about peers, rate-limited per peer.
//! - [`backup`] — backup folders with their SHA-256 manifest, and restore.
//! - [`audit`] — the hash-chained receipt log's format and its check.
//! - [`spool`] — ciphertext files of the embedded store.
//! - [`store`] — the [`store::Store`] trait and its two backends,
//!   embedded (redb) and PostgreSQL.
//! - [`commit`] — group commit of accepts and delivery receipts.
//! - [`registry`] — which units are connected, and waking their pushers.
//! - [`polled`] — a file read on a timer, and a value swapped whole.
//! - [`trust`] — the current CRL and its checker, swapped as one.
//! - [`enrolled`] — the CA's directory of enrolled units and the groups,
//!   reloaded when its file changes.
//! - [`core`] — what a running hub shares, one owner per piece.
//! - [`refusal`] — a refused request and its words.
//! - [`upload`], [`receipts`], [`push`], [`session`] — one agent's
//!   connection: its uploads, its receipts and its sender's requests, what
//!   the hub pushes to it, and the dispatch of its requests.
//! - [`queries`] — supervision answers over the store.
//! - [`quota`] — how many documents one unit may have waiting for an
//!   offline one, uploads under way included.
//! - [`scheduler`] — runs the escalation ladder on the injected clock.
//! - [`revocation`] — watches the CRL file; reloads, cuts revoked nodes,
//!   fails closed when the list is stale.
//! - [`control`] — the local query socket and its client.
//! - [`renewals`] — renewed certificates pushed to their units.
//! - [`metrics`] — the counters and levels Prometheus reads, rendered as
//!   text (pure), and the words of an unhealthy /healthz.
//! - [`observe`] — `[metrics] listen`: the /metrics and /healthz server.
//! - [`server`] — [`Hub::bind`] and [`Hub::run`]: the socket, the accept
//!   loop, and admission of each connection (handshake, hello, welcome).
//! - [`error`] — [`HubError`].
#![forbid(unsafe_code)]

pub mod admission;
pub mod audit;
pub mod backup;
pub mod commit;
pub mod control;
pub(crate) mod core;
pub mod enrolled;
pub mod error;
pub mod escalation;
pub mod expiry;
pub mod lifecycle;
pub mod loglimit;
pub mod metrics;
pub mod observe;
pub mod polled;
pub mod push;
pub mod queries;
pub mod quota;
pub mod receipts;
pub mod refusal;
pub mod registry;
pub mod renewals;
pub mod revocation;
pub mod scheduler;
pub mod server;
pub mod session;
pub mod spool;
pub mod store;
pub mod supervision;
pub mod trust;
pub mod upload;

pub use error::HubError;
pub use server::{Hub, HubHandle};
