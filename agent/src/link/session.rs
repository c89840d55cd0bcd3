//! One admitted connection's work: publish our key, take what the hub
//! pushes (documents, receipts, CRL), and send what the outbox claimed.

use std::sync::Arc;
use std::time::Duration;

use gongwen_common::envelope::{DocumentKey, KeyBinding};
use gongwen_common::receipt::Receipt;
use gongwen_common::stream::{READ_TIMEOUT, read_message, write_message};
use gongwen_common::wire::{ErrorCode, Message};
use tracing::{Instrument, debug, info, warn};

use crate::incoming::receive;
use crate::outgoing::send::{self, SendError};
use crate::unit::context::AgentContext;
use crate::unit::trust::CrlRefused;

/// Run until the connection ends. `generation` is the hub store's, from
/// its welcome.
pub async fn run(conn: quinn::Connection, ctx: Arc<AgentContext>, generation: Option<String>) {
    ctx.set_connection(Some(conn.clone()));
    run_inner(&conn, &ctx, generation).await;
    ctx.set_connection(None);
}

async fn run_inner(conn: &quinn::Connection, ctx: &Arc<AgentContext>, generation: Option<String>) {
    let (conn, ctx) = (conn.clone(), ctx.clone());
    if let Err(e) = publish_key(&conn, &ctx).await {
        warn!("could not publish our encryption key: {e}");
    }
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(g) = generation {
        tasks.spawn(follow_generation(conn.clone(), ctx.clone(), g).in_current_span());
    }
    tasks.spawn(uploader(conn.clone(), ctx.clone()).in_current_span());
    tasks.spawn(directory_keeper(ctx.clone()).in_current_span());
    loop {
        tokio::select! {
            stream = conn.accept_bi() => match stream {
                Ok((send, recv)) => {
                    tasks.spawn(serve_push(send, recv, ctx.clone()).in_current_span());
                }
                Err(_) => break,
            },
            Some(_) = tasks.join_next() => {}
        }
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
}

/// Pause between rounds of offering documents again to a rebuilt hub.
const OFFER_AGAIN_PAUSE: Duration = Duration::from_secs(5);
/// The longest pause between such rounds.
const OFFER_AGAIN_MAX_PAUSE: Duration = Duration::from_secs(300);

/// What a change of the hub's store generation asks of this agent.
#[derive(Debug, PartialEq, Eq)]
enum GenerationChange {
    /// The same store as before.
    Same,
    /// The first one this agent hears of: nothing can have been lost.
    First,
    /// Another store: the hub may have lost what it held for us.
    New,
}

fn generation_change(known: Option<&str>, now: &str) -> GenerationChange {
    match known {
        Some(k) if k == now => GenerationChange::Same,
        None => GenerationChange::First,
        Some(_) => GenerationChange::New,
    }
}

/// Offer the hub again what it may have lost when its store is not the
/// one this agent last worked with; remember the generation once done.
async fn follow_generation(conn: quinn::Connection, ctx: Arc<AgentContext>, generation: String) {
    let known = match ctx.store.run(|s| s.hub_generation()).await {
        Ok(k) => k,
        Err(e) => {
            warn!("store: {e}");
            return;
        }
    };
    match generation_change(known.as_deref(), &generation) {
        GenerationChange::Same => return,
        GenerationChange::First => {}
        GenerationChange::New => {
            warn!(
                "the hub's store is not the one this agent last worked with ({} → {generation}): it may have lost documents; offering again those not yet answered",
                known.as_deref().unwrap_or("-")
            );
            // Until every one is offered (some recipients may not have
            // connected to the rebuilt hub yet); again on the next
            // connection if this one ends first.
            // Each round offers only what is still waiting, and the rounds
            // grow apart (5 s, doubling to 5 min): a unit that never comes
            // back costs little.
            let mut done = std::collections::HashSet::new();
            let mut pause = OFFER_AGAIN_PAUSE;
            while !send::offer_again(&conn, &ctx, &mut done).await {
                if conn.close_reason().is_some() {
                    return;
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(OFFER_AGAIN_MAX_PAUSE);
            }
        }
    }
    let g = generation.clone();
    if let Err(e) = ctx.store.run(move |s| s.set_hub_generation(&g)).await {
        warn!("store: {e}");
    }
}

async fn publish_key(conn: &quinn::Connection, ctx: &AgentContext) -> Result<(), String> {
    let signer = ctx.credentials.signer();
    // A GM unit publishes its SM2 binding (its encryption key, bound by
    // its certificate key); a standard one binds its X25519 key now.
    let binding = match (signer.sm2_reach_binding(), &ctx.enc_key) {
        (Some(gm), _) => gm.map_err(|e| e.to_string())?,
        (None, DocumentKey::X25519(key)) => KeyBinding {
            node: ctx.node_id().clone(),
            public: *key.public(),
            created_ms: ctx.now_ms(),
        }
        .sign(&signer)
        .map_err(|e| e.to_string())?
        .encode(),
        (None, DocumentKey::Sm2(_)) => {
            return Err("an SM2 encryption key without an SM2 signer".into());
        }
    };
    match send::request(conn, &Message::PublishKey { binding }).await {
        Ok(Message::Ok) => Ok(()),
        Ok(Message::Error { message, .. }) => Err(message),
        Ok(other) => Err(format!("unexpected answer: {}", other.describe())),
        Err(
            SendError::Connection(e)
            | SendError::Later(e)
            | SendError::Permanent(e)
            | SendError::Changed(e)
            | SendError::Deferred(e),
        ) => Err(e),
    }
}

/// How often the directory is asked for again while connected: often just
/// after connecting (units that connect together learn of each other within
/// seconds), then once a minute.
fn directory_pause(connected_for: Duration) -> Duration {
    if connected_for < Duration::from_secs(60) {
        Duration::from_secs(5)
    } else {
        Duration::from_secs(60)
    }
}

/// Ask the hub for the directory now and again (see [`directory_pause`]
/// and [`crate::unit::directory::refresh`]).
async fn directory_keeper(ctx: Arc<AgentContext>) {
    let connected = tokio::time::Instant::now();
    loop {
        if let Err(e) = crate::unit::directory::refresh(&ctx).await {
            debug!("directory not read: {e}");
        }
        tokio::time::sleep(directory_pause(connected.elapsed())).await;
    }
}

/// How soon an answer the hub could not take yet is given again.
const ANSWER_RETRY: Duration = Duration::from_secs(2);

/// Send claimed documents now, whenever the outbox claims more, and
/// periodically (retrying what the hub could not take).
async fn uploader(conn: quinn::Connection, ctx: Arc<AgentContext>) {
    loop {
        let answers = crate::incoming::clerk::submit_answers(&conn, &ctx).await;
        if answers == crate::incoming::clerk::Submitted::ConnectionLost {
            return;
        }
        let pause = match send::send_pending(&conn, &ctx).await {
            Ok(()) => Duration::from_secs(30),
            Err(SendError::Connection(e)) => {
                if conn.close_reason().is_some() {
                    debug!("sending stopped: {e}");
                    return;
                }
                // A broken stream on a live connection: try again soon
                // rather than never (until the next reconnect).
                warn!("sending interrupted: {e}; retrying");
                Duration::from_secs(5)
            }
            Err(SendError::Later(_) | SendError::Deferred(_)) => Duration::from_secs(5),
            Err(SendError::Permanent(e) | SendError::Changed(e)) => {
                warn!("{}", gongwen_common::logsafe::Escaped(&e));
                Duration::from_secs(5)
            }
        };
        // An answer the hub asked for again is given again soon.
        let pause = if answers == crate::incoming::clerk::Submitted::SomeLater {
            pause.min(ANSWER_RETRY)
        } else {
            pause
        };
        let _ = tokio::time::timeout(pause, ctx.outbox_wake.notified()).await;
    }
}

async fn serve_push(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    ctx: Arc<AgentContext>,
) {
    let msg = match read_message(&mut recv, READ_TIMEOUT).await {
        Ok(m) => m,
        Err(e) => {
            debug!("push stream: {e}");
            return;
        }
    };
    let reply = match msg {
        Message::DeliverBegin {
            doc_id,
            header,
            content_len,
            deadline_ms,
        } => {
            let span = tracing::info_span!("receive", doc = %doc_id);
            receive::receive(send, recv, ctx, doc_id, header, content_len, deadline_ms)
                .instrument(span)
                .await;
            return;
        }
        Message::ReceiptNotice { receipt } => take_receipt(&ctx, receipt).await,
        Message::CrlUpdate { crl } => take_crl(&ctx, crl).await,
        Message::CertificateRenewal { cert } => {
            let reply = take_renewal(&ctx, &cert);
            if matches!(reply, Message::Ok) {
                let _ = write_message(&mut send, &reply).await;
                let _ = send.finish();
                // Give the answer a moment on the wire, then connect
                // again showing the new certificate.
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                if let Some(conn) = ctx.connection() {
                    conn.close(0u32.into(), b"certificate renewed; reconnecting with it");
                }
                return;
            }
            reply
        }
        Message::Notice { body } => take_notice(&ctx, body).await,
        other => Message::Error {
            code: ErrorCode::BadRequest,
            message: format!("an agent does not take a {}", other.kind()),
        },
    };
    let _ = write_message(&mut send, &reply).await;
    let _ = send.finish();
}

/// A renewed certificate from the hub: checked and installed by the
/// credentials, or refused with the reason.
fn take_renewal(ctx: &Arc<AgentContext>, cert: &[u8]) -> Message {
    match ctx.credentials.install_renewal(cert, &ctx.trust.checker()) {
        Ok(who) => {
            info!(
                "renewed certificate installed (serial {}, valid until {}); reconnecting with it",
                gongwen_common::pki::serial_hex(&who.serial),
                gongwen_common::timefmt::rfc3339(who.not_after)
            );
            Message::Ok
        }
        Err(why) => {
            warn!("security: a certificate renewal from the hub was refused: {why}");
            Message::Error {
                code: ErrorCode::BadRequest,
                message: format!("renewal refused: {why}"),
            }
        }
    }
}

/// A receipt for a document we sent: verify and keep it.
async fn take_receipt(ctx: &Arc<AgentContext>, bytes: Vec<u8>) -> Message {
    let (r, _) = match Receipt::verify(&bytes, Some(&ctx.trust.checker()), ctx.clock.now()) {
        Ok(v) => v,
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
    crate::unit::batch::Batches::submit(ctx, |c| &c.receipts, job, record_receipts);
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
fn record_receipts(ctx: &AgentContext, jobs: Vec<ReceiptJob>) {
    let rows: Vec<_> = jobs
        .iter()
        .map(|j| {
            let r = &j.receipt;
            (r.doc_id, &r.recipient, r.kind, j.bytes.as_slice())
        })
        .collect();
    let recorded = ctx.store.add_receipts(&rows);
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

async fn take_notice(ctx: &Arc<AgentContext>, body: Vec<u8>) -> Message {
    use gongwen_common::notice::Pushed;
    let Some(pushed) = Pushed::from_bytes(&body) else {
        return Message::Error {
            code: ErrorCode::Malformed,
            message: "not a notice".into(),
        };
    };
    let c = ctx.clone();
    let taken = tokio::task::spawn_blocking(move || match pushed {
        Pushed::One(notice) => crate::incoming::clerk::take_notice(&c, &notice),
        Pushed::Round(r) => {
            crate::incoming::clerk::take_round(&c, &r.at, r.escalation_level, &r.items)
        }
    });
    match taken.await {
        Ok(Ok(())) => Message::Ok,
        Ok(Err(e)) => Message::Error {
            code: ErrorCode::Storage,
            message: e.to_string(),
        },
        Err(e) => Message::Error {
            code: ErrorCode::Internal,
            message: e.to_string(),
        },
    }
}

async fn take_crl(ctx: &Arc<AgentContext>, der: Vec<u8>) -> Message {
    match ctx.trust.take_crl(&der) {
        Ok(_) => {}
        Err(e @ CrlRefused::Older { .. }) => {
            warn!("security: the hub sent an older revocation list: {e}");
            return Message::Error {
                code: ErrorCode::BadRequest,
                message: "this unit holds a newer revocation list".into(),
            };
        }
        Err(e) => {
            warn!("the hub sent a revocation list that is not from our CA: {e}");
            return Message::Error {
                code: ErrorCode::BadSignature,
                message: e.to_string(),
            };
        }
    }
    // Kept for the next start; the hub sends a fresh one on every
    // connection, so a failed write costs nothing lasting.
    let path = ctx.folders.crl();
    let written = tokio::task::spawn_blocking(move || {
        gongwen_common::fsutil::write_atomic(&path, &der, 0o600)
    })
    .await;
    if !matches!(written, Ok(Ok(()))) {
        warn!("could not save the revocation list");
    }
    Message::Ok
}

#[cfg(test)]
mod generation_tests {
    use super::*;

    #[test]
    fn only_another_store_generation_asks_for_documents_again() {
        assert_eq!(generation_change(Some("a"), "a"), GenerationChange::Same);
        assert_eq!(generation_change(None, "a"), GenerationChange::First);
        assert_eq!(generation_change(Some("a"), "b"), GenerationChange::New);
    }
}
