//! # gongwen-certs
//!
//! The deployment's certificate authority. One CA per deployment issues
//! every certificate the hub and the agents present; the id and role inside
//! a certificate are the only identity gongwen trusts.
//!
//! A CA directory holds:
//!
//! ```text
//! ca.key          CA private key (0600, never leaves this directory)
//! ca.crt          CA certificate, copied next to every issued certificate
//! crl.pem         current revocation list, signed by the CA
//! registry.json   every certificate issued: id, role, serial, validity, revocation
//! ```
//!
//! ## Layout
//! - [`ca`] — [`Ca`]: init, open, issue, sign a CSR, revoke, write the CRL, list.
//! - [`enroll`] — enrollment in bulk from a CSV: one ready bundle per unit.
//! - [`registry`] — the record of issued certificates.
//! - [`error`] — [`CaError`].
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

pub mod ca;
pub mod enroll;
pub mod error;
pub mod registry;

pub use ca::{Ca, IssueRequest, Issued, Validity};
pub use error::CaError;
pub use registry::{ListRow, Status};
