//! Receipts from the recipients of what we sent, pushed by the hub:
//! verified, then recorded in batches (one commit for those that arrive
//! together). A receipt is kept even before our own record of the send is
//! written (a crash between the hub's accepted and ours): it is evidence.

use std::sync::Arc;

use gongwen_common::NodeId;
use gongwen_common::receipt::Receipt;
use gongwen_common::wire::{ErrorCode, Message};
use tracing::{debug, info, warn};

use crate::unit::batch::Batches;
use crate::unit::identity::Identity;
use crate::unit::store::Store;

/// The short verification code a printed 签收单 or 退文单 carries: the
/// first 16 hex digits of the SHA-256 of the signed receipt's signature
/// (`receipt-…-<kind>-<unit>.sig.der` in the evidence bundle), in groups
/// of four — anyone holding the bundle checks it with `openssl dgst
/// -sha256`. With the receipt it was printed from, so the slip shows
/// exactly what was signed; none for bytes that are not a receipt.
pub fn verification_code(receipt: &[u8], now: time::OffsetDateTime) -> Option<(Receipt, String)> {
    let (r, st) = Receipt::verify(receipt, None, now).ok()?;
    let hex = gongwen_common::pki::serial_hex(&gongwen_common::digest::sha256(&st.signature));
    let code = hex
        .get(..16)?
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).to_uppercase())
        .collect::<Vec<_>>()
        .join("-");
    Some((r, code))
}

/// A receipt for a document we sent: verify and keep it.
pub async fn take_receipt(
    me: &Identity,
    store: &Store,
    queue: &Arc<Batches<ReceiptJob>>,
    bytes: Vec<u8>,
) -> Message {
    let now = me.clock().now();
    let verified = me.trust().check_any(
        |checker| Receipt::verify(&bytes, Some(checker), now),
        |e| {
            e.to_string()
                .contains(&gongwen_common::pki::CertProblem::NotFromCa.to_string())
        },
    );
    let (r, _) = match verified {
        // A recipient elsewhere signs with its own id: recorded as this
        // unit named it when it sent (`unit@domain`).
        Ok(((mut r, signer), Some(domain))) => {
            r.recipient = NodeId::remote(&r.recipient, &domain);
            r.issuer = NodeId::remote(&r.issuer, &domain);
            (r, signer)
        }
        Ok((v, None)) => v,
        Err(e) if e.is_transient() => {
            // Its signer cannot be judged until a fresh CRL arrives; the
            // hub keeps it and pushes it again.
            debug!("a receipt waits: {e}");
            return Message::Error {
                code: ErrorCode::NotNow,
                message: e.to_string(),
            };
        }
        Err(e) => {
            warn!("security: a receipt from the hub does not verify: {e}");
            return Message::Error {
                code: ErrorCode::BadSignature,
                message: e.to_string(),
            };
        }
    };
    // Kept even if our record of the send is not written yet (a crash
    // between the hub's accepted and ours): the receipt is evidence.
    // Receipts pushed together are recorded in one commit.
    let (reply, answer) = tokio::sync::oneshot::channel();
    let job = ReceiptJob {
        receipt: r,
        bytes,
        reply,
    };
    let store = store.clone();
    queue.submit(job, move |jobs| record_receipts(&store, jobs));
    match answer.await {
        Ok(Ok(())) => Message::Ok,
        Ok(Err(message)) => Message::Error {
            code: ErrorCode::Storage,
            message,
        },
        Err(_) => Message::Error {
            code: ErrorCode::Storage,
            message: "recording the receipt stopped".into(),
        },
    }
}

/// A verified receipt from a recipient, waiting to be recorded.
#[derive(Debug)]
pub struct ReceiptJob {
    receipt: Receipt,
    bytes: Vec<u8>,
    reply: tokio::sync::oneshot::Sender<Result<(), String>>,
}

/// Record a batch of receipts in one commit and answer each. Blocking.
fn record_receipts(store: &Store, jobs: Vec<ReceiptJob>) {
    let rows: Vec<_> = jobs
        .iter()
        .map(|j| {
            let r = &j.receipt;
            (r.doc_id, &r.recipient, r.kind, j.bytes.as_slice())
        })
        .collect();
    let recorded = store.add_receipts(&rows);
    drop(rows);
    match recorded {
        Ok(new) => {
            for (job, new) in jobs.into_iter().zip(new) {
                if new {
                    let r = &job.receipt;
                    info!(doc = %r.doc_id, "{} by {}", r.kind.as_str(), r.recipient);
                }
                let _ = job.reply.send(Ok(()));
            }
        }
        Err(e) => {
            for job in jobs {
                let _ = job.reply.send(Err(e.to_string()));
            }
        }
    }
}
