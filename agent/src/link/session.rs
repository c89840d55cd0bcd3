//! One admitted connection's work: publish our key, take what the hub
//! pushes (documents, receipts, CRL), and send what the outbox claimed.

use std::sync::Arc;
use std::time::Duration;

use gongwen_common::envelope::{DocumentKey, KeyBinding};
use gongwen_common::stream::{READ_TIMEOUT, read_message, write_message};
use gongwen_common::wire::{ErrorCode, Message};
use tracing::{Instrument, debug, info, warn};

use crate::incoming::receipts::ReceiptJob;
use crate::incoming::receive::{self, Receiving};
use crate::outgoing::send::{self, SendError, Sending};
use crate::parts::Parts;
use crate::unit::batch::Batches;
use crate::unit::counters::Counters;
use crate::unit::directory::Known;
use crate::unit::hub_link::Link;
use crate::unit::identity::Identity;
use crate::unit::outgoing::Outgoing;
use crate::unit::store::Store;
use crate::unit::trust::CrlRefused;

/// Run until the connection ends. `generation` is the hub store's, from
/// its welcome.
pub async fn run(conn: quinn::Connection, parts: &Parts, generation: Option<String>) {
    parts.link().set_connection(Some(conn.clone()));
    run_inner(&conn, parts, generation).await;
    parts.link().set_connection(None);
}

async fn run_inner(conn: &quinn::Connection, parts: &Parts, generation: Option<String>) {
    let conn = conn.clone();
    if let Err(e) = publish_key(&conn, parts.identity()).await {
        warn!("could not publish our encryption key: {e}");
    }
    let sending = Sending::new(
        parts.identity().clone(),
        parts.store().clone(),
        parts.holds().clone(),
        parts.outgoing().clone(),
        parts.known().clone(),
    );
    let receiving = Receiving::new(
        parts.identity().clone(),
        parts.store().clone(),
        parts.holds().clone(),
        parts.outgoing().clone(),
        parts.counters().clone(),
    );
    let receipts = Arc::default();
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(g) = generation {
        tasks.spawn(
            follow_generation(conn.clone(), parts.store().clone(), sending.clone(), g)
                .in_current_span(),
        );
    }
    tasks.spawn(
        uploader(
            conn.clone(),
            parts.store().clone(),
            parts.outgoing().clone(),
            parts.counters().clone(),
            sending,
        )
        .in_current_span(),
    );
    tasks.spawn(
        directory_keeper(
            parts.known().clone(),
            parts.link().clone(),
            parts.identity().clone(),
        )
        .in_current_span(),
    );
    loop {
        tokio::select! {
            stream = conn.accept_bi() => match stream {
                Ok((send, recv)) => {
                    let push = serve_push(send, recv, parts.clone(), receiving.clone(), Arc::clone(&receipts));
                    tasks.spawn(push.in_current_span());
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
async fn follow_generation(
    conn: quinn::Connection,
    store: Store,
    sending: Sending,
    generation: String,
) {
    let known = match store.run(|s| s.hub_generation()).await {
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
            while !send::offer_again(&conn, &sending, &mut done).await {
                if conn.close_reason().is_some() {
                    return;
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(OFFER_AGAIN_MAX_PAUSE);
            }
        }
    }
    let g = generation.clone();
    if let Err(e) = store.run(move |s| s.set_hub_generation(&g)).await {
        warn!("store: {e}");
    }
}

async fn publish_key(conn: &quinn::Connection, me: &Identity) -> Result<(), String> {
    let signer = me.credentials().signer();
    // A GM unit publishes its SM2 binding (its encryption key, bound by
    // its certificate key); a standard one binds its X25519 key now.
    let binding = match (signer.sm2_reach_binding(), &me.enc_key()) {
        (Some(gm), _) => gm.map_err(|e| e.to_string())?,
        (None, DocumentKey::X25519(key)) => KeyBinding {
            node: me.node_id().clone(),
            public: *key.public(),
            created_ms: me.now_ms(),
        }
        .sign(&signer)
        .map_err(|e| e.to_string())?
        .encode(),
        (None, DocumentKey::Sm2(_)) => {
            return Err("an SM2 encryption key without an SM2 signer".into());
        }
    };
    gongwen_common::stream::request_ok(conn, &Message::PublishKey { binding }, READ_TIMEOUT).await
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
/// and [`Known::refresh`]).
async fn directory_keeper(known: Arc<Known>, link: Arc<Link>, me: Arc<Identity>) {
    let connected = tokio::time::Instant::now();
    loop {
        if let Err(e) = known.refresh(&link, &me).await {
            debug!("directory not read: {e}");
        }
        tokio::time::sleep(directory_pause(connected.elapsed())).await;
    }
}

/// How soon an answer the hub could not take yet is given again.
const ANSWER_RETRY: Duration = Duration::from_secs(2);

/// Send claimed documents now, whenever the outbox claims more, and
/// periodically (retrying what the hub could not take).
async fn uploader(
    conn: quinn::Connection,
    store: Store,
    outgoing: Arc<Outgoing>,
    counters: Arc<Counters>,
    sending: Sending,
) {
    loop {
        let answers = crate::incoming::clerk::submit_answers(&conn, &store).await;
        if answers == crate::incoming::clerk::Submitted::ConnectionLost {
            return;
        }
        let pause = match send::send_pending(&conn, &sending).await {
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
        counters.send_round_done();
        let pause = if answers == crate::incoming::clerk::Submitted::SomeLater {
            pause.min(ANSWER_RETRY)
        } else {
            pause
        };
        let _ = tokio::time::timeout(pause, outgoing.woken()).await;
    }
}

async fn serve_push(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    parts: Parts,
    receiving: Receiving,
    receipts: Arc<Batches<ReceiptJob>>,
) {
    let me = parts.identity();
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
            receive::receive(
                send,
                recv,
                receiving,
                doc_id,
                header,
                content_len,
                deadline_ms,
            )
            .instrument(span)
            .await;
            return;
        }
        Message::ReceiptNotice { receipt } => {
            crate::incoming::receipts::take_receipt(me, parts.store(), &receipts, receipt).await
        }
        Message::CrlUpdate { crl } => take_crl(me, crl).await,
        Message::PeerOffer { kind, domain, len } => {
            take_other(me, &mut recv, kind, &domain, len).await
        }
        Message::CertificateRenewal { cert } => {
            let reply = take_renewal(me, &cert);
            if matches!(reply, Message::Ok) {
                let _ = write_message(&mut send, &reply).await;
                let _ = send.finish();
                // Give the answer a moment on the wire, then connect
                // again showing the new certificate.
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                if let Some(conn) = parts.link().connection() {
                    conn.close(0u32.into(), b"certificate renewed; reconnecting with it");
                }
                return;
            }
            reply
        }
        Message::Notice { body } => take_notice(me, parts.store(), body).await,
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
fn take_renewal(me: &Identity, cert: &[u8]) -> Message {
    match me
        .credentials()
        .install_renewal(cert, &me.trust().checker())
    {
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

async fn take_notice(me: &Arc<Identity>, store: &Store, body: Vec<u8>) -> Message {
    use gongwen_common::notice::Pushed;
    let Some(pushed) = Pushed::from_bytes(&body) else {
        return Message::Error {
            code: ErrorCode::Malformed,
            message: "not a notice".into(),
        };
    };
    let (me, store) = (me.clone(), store.clone());
    let taken = tokio::task::spawn_blocking(move || match pushed {
        Pushed::One(notice) => crate::incoming::clerk::take_notice(&me, &store, &notice),
        Pushed::Round(r) => {
            crate::incoming::clerk::take_round(&me, &store, &r.at, r.escalation_level, &r.items)
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

/// What the hub hands us of another domain (the chain of statements to
/// its CA, its CRL): checked from our own CA, kept while we run.
async fn take_other(
    me: &Identity,
    recv: &mut quinn::RecvStream,
    kind: gongwen_common::wire::PeerOfferKind,
    domain: &str,
    len: u64,
) -> Message {
    // A chain or a CRL: small next to a frame.
    const MAX: u64 = 4 << 20;
    let refuse = |code, message: String| Message::Error { code, message };
    let Ok(domain) = gongwen_common::federation::Domain::parse(domain) else {
        return refuse(ErrorCode::Malformed, "not a domain name".into());
    };
    if len > MAX {
        return refuse(
            ErrorCode::TooLarge,
            format!("{len} bytes is more than {MAX}"),
        );
    }
    let bytes = match tokio::time::timeout(READ_TIMEOUT, recv.read_to_end(len as usize)).await {
        Ok(Ok(b)) if b.len() as u64 == len => b,
        _ => return refuse(ErrorCode::Malformed, "the offer was cut short".into()),
    };
    match me.trust().take_other(kind, &domain, &bytes) {
        Ok(()) => Message::Ok,
        Err(e) => {
            warn!(
                "security: the hub handed over a {} of {domain} that does not hold: {e}",
                kind.as_str()
            );
            refuse(ErrorCode::BadSignature, e)
        }
    }
}

async fn take_crl(me: &Identity, der: Vec<u8>) -> Message {
    match me.trust().take_crl(&der) {
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
    let path = me.folders().crl();
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
