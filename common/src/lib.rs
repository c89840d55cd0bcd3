//! # gongwen-common
//!
//! The library every gongwen program shares. gongwen carries official
//! documents (公文) between government units: a hub and one agent per unit
//! talk over QUIC with mutual TLS 1.3, and every unit is known only by the
//! certificate the deployment's own CA issued to it.
//!
//! ```text
//!   gongwen-certs ──issues──▶ certificates (id + role inside)
//!                                   │
//!   agent ══QUIC/mTLS, ALPN gongwen/1══ hub ══ agent
//!     hello ──────────▶ (first bidirectional stream)
//!     ◀────────── welcome | refused
//! ```
//!
//! Everything here is plain values and functions: no sockets, no files
//! except the small loaders in [`pki`] and [`config`] that read key
//! material and configuration once at start.
//!
//! ## Layout
//! - [`id`] — [`NodeId`], the validated name of a unit (`harbin-gov`).
//! - [`pki`] — roles, what a certificate says about its holder, TLS
//!   configurations for hub and agent, CRL inspection.
//! - [`clock`] — injected time: the system clock, or a manual one in tests.
//! - [`codec`] — the canonical byte encoding under wire frames and signatures.
//! - [`envelope`] — seal and open documents: metadata, HPKE key wrap, chunked AES-GCM.
//! - [`deadline`] — when recipients must have signed for a document.
//! - [`notice`] — urge, supervise and recall notices from the hub.
//! - [`links`] — a document asks for an answer, answers another, forwards another.
//! - [`receipt`] — receipts (accepted, delivered, quarantined, acknowledged, rejected).
//! - [`signed`] — signed statements (ECDSA P-256, DER) and the signer.
//! - [`digest`] — SHA-256.
//! - [`suite`] — the crypto suite a deployment uses (standard or 国密), and
//!   its digests.
//! - [`gm`] — SM2, SM3 and SM4 for the 国密 suite.
//! - [`wire`] — the frame codec and message vocabulary (sans-IO).
//! - [`stream`] — whole messages on QUIC streams, with read deadlines (edge).
//! - [`transfer`] — document bytes between QUIC streams and files, batched (edge).
//! - [`fsutil`] — durable writes (temp, fsync, rename, fsync dir).
//! - [`directory`] — the CA's signed list of enrolled units and their keys.
//! - [`supervision`] — what the hub answers about documents and units
//!   (states, status, overdue, report, the address book), typed for both
//!   sides.
//! - [`display`] — supervision answers as tables for people.
//! - [`logsafe`] — names and peer text escaped (and clipped) for log lines.
//! - [`daemon`] — logging and shutdown signals for the binaries (edge).
//! - [`stdout`] — `say!`/`sayln!`: what the programs print, ending quietly
//!   when the reader has gone (`| head`).
//! - [`control`] — local control sockets: one JSON line each way (edge).
//! - [`kvstore`] — what the redb stores share (open, records, blocking).
//! - [`config`] — `hub.toml` and `agent.toml`, strictly parsed.
//! - [`material`] — the certificate, key, CA and CRL a configuration names,
//!   loaded and checked against each other (errors name file and key).
//! - [`tls`] — TLS 1.3 + QUIC configurations for hub and agent.
//! - [`provider`] — the one rustls crypto provider, and time as rustls
//!   counts it.
//! - [`timefmt`] — durations such as `"4h"` and RFC 3339 time stamps.
//! - [`error`] — the crate's error enum.
//! - [`failpoint`] — crash points the fault tests arm by environment.
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

pub mod clock;
pub mod codec;
pub mod config;
pub mod control;
pub mod daemon;
pub mod deadline;
pub mod digest;
pub mod directory;
pub mod display;
pub mod elements;
pub mod envelope;
pub mod error;
pub mod failpoint;
pub mod federation;
pub mod fsutil;
pub mod gm;
pub mod id;
pub mod keytree;
pub mod kvstore;
pub mod links;
pub mod logsafe;
pub mod lookup;
pub mod material;
pub mod notice;
pub mod pki;
pub mod provider;
pub mod receipt;
pub mod signed;
pub mod stdout;
pub mod stream;
pub mod suite;
pub mod supervision;
pub mod timefmt;
pub mod tls;
pub mod transfer;
pub mod wire;

pub use error::Error;
pub use id::{DocId, NodeId};
pub use pki::Role;

/// The protocol name carried in ALPN; a peer that does not speak it is refused
/// during the handshake.
pub const ALPN: &[u8] = b"gongwen/1";
