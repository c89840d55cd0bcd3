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
//! The folders are the layers, in this order; a module uses only the
//! layers before its own, and no two files import each other.
//! - `rules/` — decisions as plain functions over values, tested without
//!   sockets: [`rules::records`] (what the hub records of a document),
//!   [`rules::lifecycle`] (one recipient's copy from queued to closed),
//!   [`rules::escalation`] (when to urge and escalate),
//!   [`rules::notices`] (the 催办 and 督办 notices the ladder sends),
//!   [`rules::supervision`] (status, overdue and report over records),
//!   [`rules::admission`] (who gets in: the handshake gate, the
//!   certificate judged at admission, the pre-welcome bounds),
//!   [`rules::expiry`] (warnings before certificates and the CRL run out).
//! - `store/` — [`store::Store`], the trait, and its backends,
//!   [`store::embedded`] (redb, with [`store::spool`] for ciphertext and
//!   [`store::audit`], the hash-chained receipt log) and [`store::postgres`];
//!   [`store::import`] (an embedded store moved into PostgreSQL);
//!   [`store::commit`], group commit of accepts and delivery receipts.
//! - `state/` — what a running hub owns, one owner per piece, gathered in
//!   `state::core::Core`: [`state::registry`] (connected units, waking their pushers),
//!   [`state::trust`] (the CRL in force), [`state::enrolled`] (the CA's
//!   directory and the groups), [`state::renewals`] (renewed certificates
//!   waiting), [`state::quota`] (documents waiting for an offline unit),
//!   [`state::metrics`] (the counters Prometheus reads),
//!   [`state::polled`] (a file read on a timer, a value swapped whole),
//!   [`state::loglimit`] (warnings about peers, rate-limited).
//! - `link/` — one agent's admitted connection: [`link::session`] (the
//!   dispatch of its requests), [`link::upload`], [`link::receipts`],
//!   [`link::push`] (what the hub pushes to it), [`link::renewal_push`]
//!   (its renewed certificate), [`link::queries`] (supervision answers
//!   over the store), [`link::refusal`] (a refused request and its words).
//! - `tasks/` — what runs on its own: [`tasks::scheduler`] (the escalation
//!   ladder on the injected clock), [`tasks::revocation`] (the CRL file:
//!   reload, cut revoked units, fail closed when stale),
//!   [`tasks::directory_watch`] (the CA's directory file).
//! - `ops/` — for administrators: [`ops::control`] (the local query socket
//!   and its client), [`ops::backup`] (backups with a signed manifest, and
//!   restore), [`ops::observe`] (`/metrics` and `/healthz`).
//! - [`server`] — the composition: [`Hub::bind`] and [`Hub::run`] build
//!   `Core`, start the tasks and the front doors, and admit each
//!   connection (handshake, hello, welcome).
//! - [`error`] — [`HubError`].
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

pub mod error;
pub mod link;
pub mod ops;
pub mod rules;
pub mod server;
pub mod state;
pub mod store;
pub mod tasks;

pub use error::HubError;
pub use server::{Hub, HubHandle};
