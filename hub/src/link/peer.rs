//! Links to the hubs of peer domains (ALPN `gongwen-fed/1`).
//!
//! ```text
//! dialing hub                         accepting hub
//!   PeerHello {domain, suite, CRL} ──►  is the domain a peer? same suite?
//!                                       take the CRL (not older), judge the
//!                                       certificate against that domain's CA
//!                                  ◄──  PeerWelcome {domain, suite, CRL}
//!   same checks of the accepting hub      | or close(code, reason)
//! then either side opens streams:  CrlUpdate (our CRL changed) ← Ok | Error
//! ```
//!
//! Both ends judge the other on every link and again each second while it
//! lasts (a certificate that expires, a revocation that arrives, a CRL
//! that goes stale end it), each by its own clock. A refusal names the
//! reason in the close frame and in the `peers` view of both hubs.

use std::sync::Arc;
use std::time::Duration;

use gongwen_common::federation::{Domain, FEDERATION_VERSION};
use gongwen_common::logsafe::Clipped;
use gongwen_common::stream::{READ_TIMEOUT, read_message, read_message_within, write_message};
use gongwen_common::wire::{ErrorCode, MAX_FRAME_LEN, Message, RefuseCode};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::state::core::Core;
use crate::state::federation::Direction;
use crate::state::registry::close;

/// Bytes a peer hub may send before its hello is judged: the hello carries
/// its CRL. It has already shown a certificate chained to a CA a
/// federation statement names.
const PEER_HELLO_WINDOW: u32 = 2 << 20;

/// How often a live link's certificate is judged again.
const JUDGE_EVERY: Duration = Duration::from_secs(1);

/// Longest wait between two dial attempts.
const MAX_REDIAL: Duration = Duration::from_secs(30);

/// What a refused link is told and logged.
struct Refusal {
    code: RefuseCode,
    reason: String,
}

impl Refusal {
    fn new(code: RefuseCode, reason: impl Into<String>) -> Refusal {
        Refusal {
            code,
            reason: reason.into(),
        }
    }
}

impl From<crate::rules::admission::Refused> for Refusal {
    fn from(r: crate::rules::admission::Refused) -> Refusal {
        Refusal::new(r.code, r.reason)
    }
}

/// The first certificate the peer showed.
fn peer_certificate(conn: &quinn::Connection) -> Option<CertificateDer<'static>> {
    let certs = conn
        .peer_identity()?
        .downcast::<Vec<CertificateDer<'static>>>()
        .ok()?;
    certs.first().cloned()
}

/// Run `update` (a CRL, chain or directory taken: verified, then written
/// and synced to the data folder) on a blocking thread, off the runtime.
async fn updating_trust<T: Send + 'static>(
    core: &Arc<Core>,
    update: impl FnOnce(&crate::state::federation::Federation) -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let core = core.clone();
    tokio::task::spawn_blocking(move || match core.federation() {
        Some(f) => update(f),
        None => Err("this hub has no [federation] section".into()),
    })
    .await
    .map_err(|e| format!("the update stopped: {e}"))?
}

/// A CRL the peer `domain` pushed, taken off the runtime.
async fn take_peer_crl(core: &Arc<Core>, domain: &Domain, crl: Vec<u8>) -> Result<bool, String> {
    let domain = domain.clone();
    updating_trust(core, move |f| f.take_crl(&domain, &crl)).await
}

/// The checks both ends make of the other's hello or welcome: a peer
/// domain, the same suite, a CRL from its CA, then its certificate.
async fn judge_greeting(
    core: &Arc<Core>,
    claimed: &str,
    suite: &str,
    crl: &[u8],
    cert: &[u8],
) -> Result<Domain, Refusal> {
    let Some(f) = core.federation() else {
        return Err(Refusal::new(
            RefuseCode::RoleNotAllowed,
            "this hub has no [federation] section",
        ));
    };
    let domain = Domain::parse(claimed).map_err(|e| {
        Refusal::new(
            RefuseCode::ProtocolViolation,
            format!("the peer names no valid domain: {e}"),
        )
    })?;
    if f.peer(&domain).is_none() {
        return Err(Refusal::new(
            RefuseCode::RoleNotAllowed,
            format!(
                "{domain} is not a federation peer of {} (no [[federation.peers]] entry for it)",
                f.domain()
            ),
        ));
    }
    if suite != f.suite().as_str() {
        return Err(Refusal::new(
            RefuseCode::RoleNotAllowed,
            format!(
                "{domain} uses the {} suite and {} the {} suite; both ends of a federation link must use the same suite",
                Clipped(suite),
                f.domain(),
                f.suite()
            ),
        ));
    }
    f.check_issuer(&domain, cert, core.clock().now())?;
    match take_peer_crl(core, &domain, crl.to_vec()).await {
        Ok(true) => {
            info!(peer = %domain, "took {domain}'s revocation list");
            f.offers_changed();
        }
        Ok(false) => {}
        // An older list than the one held: the held one judges.
        Err(e) if e.contains("older than") => warn!(peer = %domain, "{e}"),
        Err(e) => return Err(Refusal::new(RefuseCode::ProtocolViolation, e)),
    }
    f.judge(&domain, cert, core.clock().now())?;
    Ok(domain)
}

/// A connection that arrived on ALPN `gongwen-fed/1`: its hello, judged;
/// then the link until it ends.
pub(crate) async fn accept(conn: quinn::Connection, core: Arc<Core>) {
    let addr = conn.remote_address();
    let Some(cert) = peer_certificate(&conn) else {
        close(&conn, RefuseCode::ProtocolViolation, "no certificate");
        return;
    };
    conn.set_receive_window(quinn::VarInt::from_u32(PEER_HELLO_WINDOW));
    let stream = tokio::time::timeout(READ_TIMEOUT, conn.accept_bi()).await;
    let Ok(Ok((mut send, mut recv))) = stream else {
        close(&conn, RefuseCode::ProtocolViolation, "no hello");
        return;
    };
    let greeted = match read_message_within(&mut recv, READ_TIMEOUT, MAX_FRAME_LEN).await {
        Ok(Message::PeerHello {
            version,
            domain,
            suite,
            crl,
        }) if version == FEDERATION_VERSION => judge_greeting(&core, &domain, &suite, &crl, &cert)
            .await
            .map_err(|r| (Some(domain), r)),
        Ok(Message::PeerHello {
            version, domain, ..
        }) => Err((
            Some(domain),
            Refusal::new(
                RefuseCode::UnsupportedVersion,
                format!("this hub speaks federation version {FEDERATION_VERSION}, not {version}"),
            ),
        )),
        Ok(other) => Err((
            None,
            Refusal::new(
                RefuseCode::ProtocolViolation,
                format!("expected a peer hello, got {}", other.describe()),
            ),
        )),
        Err(e) => Err((
            None,
            Refusal::new(
                RefuseCode::ProtocolViolation,
                format!("no valid hello: {e}"),
            ),
        )),
    };
    let domain = match greeted {
        Ok(d) => d,
        Err((claimed, refusal)) => {
            warn!(
                %addr,
                "security: refused a peer hub{}: {}",
                claimed
                    .as_ref()
                    .map(|c| format!(" claiming {}", Clipped(c)))
                    .unwrap_or_default(),
                refusal.reason
            );
            if let (Some(f), Some(d)) = (
                core.federation(),
                claimed.as_deref().and_then(|c| Domain::parse(c).ok()),
            ) && f.peer(&d).is_some()
            {
                f.problem(
                    &d,
                    core.clock().now(),
                    format!("refused its link: {}", refusal.reason),
                );
            }
            close(&conn, refusal.code, &refusal.reason);
            return;
        }
    };
    gongwen_common::tls::admitted_limits(&conn);
    let Some(f) = core.federation() else { return };
    let welcome = Message::PeerWelcome {
        domain: f.domain().to_string(),
        suite: f.suite().to_string(),
        crl: core.trust().current().crl.der.to_vec(),
    };
    if let Err(e) = write_message(&mut send, &welcome).await {
        debug!(%addr, "could not welcome {domain}: {e}");
        return;
    }
    let span = info_span!("peer", %domain, %addr);
    serve(conn, domain, cert, Direction::Accepted, core, (send, recv))
        .instrument(span)
        .await;
}

/// What a hub dials its peers with.
pub(crate) struct DialMaterial {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

/// Dial `domain` at its `addr` for as long as the hub runs; after a link
/// ends, or an attempt fails, wait (1 s, doubling to 30 s; from 1 s again
/// after a link that lasted) and dial again.
pub(crate) async fn dial_forever(
    core: Arc<Core>,
    endpoint: quinn::Endpoint,
    material: Arc<DialMaterial>,
    domain: Domain,
) {
    // Doubled before the first wait.
    let mut wait = Duration::from_millis(500);
    loop {
        let started = std::time::Instant::now();
        let outcome = dial_once(&core, &endpoint, &material, &domain).await;
        if let Err(problem) = outcome
            && let Some(f) = core.federation()
        {
            f.problem(&domain, core.clock().now(), problem);
        }
        wait = redial_wait(wait, started.elapsed());
        tokio::time::sleep(wait).await;
    }
}

/// How long to wait before dialing again, after waiting `before` and then
/// a link (or an attempt) that lasted `lasted`: from 1 s, doubling to
/// [`MAX_REDIAL`] while attempts keep failing; back to 1 s after a link
/// that held a minute. Pure.
fn redial_wait(before: Duration, lasted: Duration) -> Duration {
    if lasted > Duration::from_secs(60) {
        return Duration::from_secs(1);
    }
    (before * 2).min(MAX_REDIAL)
}

/// One link to `domain`: connect to the first address that answers,
/// greet, be welcomed, serve until it ends. `Err`: why it could not be
/// made (or how it ended), for `peers`.
async fn dial_once(
    core: &Arc<Core>,
    endpoint: &quinn::Endpoint,
    material: &DialMaterial,
    domain: &Domain,
) -> Result<(), String> {
    let f = core.federation().ok_or("no [federation] section")?;
    let peer = f
        .peer(domain)
        .ok_or_else(|| format!("{domain} is not a peer"))?;
    let config = gongwen_common::tls::peer_client_config(
        material.chain.clone(),
        material.key.clone_key(),
        &peer.ca,
        core.clock().clone(),
    )
    .map_err(|e| format!("cannot make the link's TLS configuration: {e}"))?;
    let mut problems = Vec::new();
    let mut conn = None;
    for a in &peer.config.addr {
        let addrs = match tokio::net::lookup_host(a).await {
            Ok(addrs) => addrs.collect::<Vec<_>>(),
            Err(e) => {
                problems.push(format!("{a}: {e}"));
                continue;
            }
        };
        for addr in addrs {
            let connecting = match endpoint.connect_with(config.clone(), addr, domain.as_str()) {
                Ok(c) => c,
                Err(e) => {
                    problems.push(format!("{addr}: {e}"));
                    continue;
                }
            };
            match tokio::time::timeout(READ_TIMEOUT, connecting).await {
                Ok(Ok(c)) => {
                    conn = Some(c);
                    break;
                }
                Ok(Err(e)) => problems.push(format!("{addr}: {e}")),
                Err(_) => problems.push(format!("{addr}: no answer within {READ_TIMEOUT:?}")),
            }
        }
        if conn.is_some() {
            break;
        }
    }
    let Some(conn) = conn else {
        let text = format!("cannot reach {domain}: {}", problems.join("; "));
        debug!("{text}");
        return Err(text);
    };
    let addr = conn.remote_address();
    let Some(cert) = peer_certificate(&conn) else {
        return Err("the peer showed no certificate".into());
    };
    let (mut send, mut recv) = conn
        .open_bi()
        .await
        .map_err(|e| format!("{domain} at {addr}: {e}"))?;
    let hello = Message::PeerHello {
        version: FEDERATION_VERSION,
        domain: f.domain().to_string(),
        suite: f.suite().to_string(),
        crl: core.trust().current().crl.der.to_vec(),
    };
    write_message(&mut send, &hello)
        .await
        .map_err(|e| format!("{domain} at {addr}: {e}"))?;
    let welcome = match read_message(&mut recv, READ_TIMEOUT).await {
        Ok(w) => w,
        Err(e) => {
            // A refusal arrives as the connection's close: say its words.
            let why = match conn.close_reason() {
                Some(quinn::ConnectionError::ApplicationClosed(c)) => {
                    String::from_utf8_lossy(&c.reason).into_owned()
                }
                Some(other) => other.to_string(),
                None => e.to_string(),
            };
            let text = format!("{domain} at {addr} refused this hub: {}", Clipped(&why));
            error!("{text}");
            return Err(text);
        }
    };
    let judged = match welcome {
        Message::PeerWelcome {
            domain: theirs,
            suite,
            crl,
        } => match judge_greeting(core, &theirs, &suite, &crl, &cert).await {
            Ok(d) if &d == domain => Ok(()),
            Ok(other) => Err(Refusal::new(
                RefuseCode::RoleNotAllowed,
                format!("the hub at {addr} speaks for {other}, not {domain}"),
            )),
            Err(r) => Err(r),
        },
        other => Err(Refusal::new(
            RefuseCode::ProtocolViolation,
            format!("expected a peer welcome, got {}", other.describe()),
        )),
    };
    if let Err(r) = judged {
        let text = format!("refused the hub at {addr} as {domain}: {}", r.reason);
        error!("security: {text}");
        close(&conn, r.code, &r.reason);
        return Err(text);
    }
    let span = info_span!("peer", %domain, %addr);
    let ended = serve(
        conn,
        domain.clone(),
        cert,
        Direction::Dialed,
        core.clone(),
        (send, recv),
    )
    .instrument(span)
    .await;
    Err(ended)
}

/// A judged link, both ways alike: registered while it lasts; our CRL
/// pushed when it changes; the peer's requests answered; the peer judged
/// again each second. Returns how it ended.
async fn serve(
    conn: quinn::Connection,
    domain: Domain,
    cert: CertificateDer<'static>,
    direction: Direction,
    core: Arc<Core>,
    hello_stream: (quinn::SendStream, quinn::RecvStream),
) -> String {
    let Some(f) = core.federation() else {
        return String::new();
    };
    // The hello stream stays open for the link's life.
    let _hello_stream = hello_stream;
    let ticket = f.connected(&domain, &conn, direction, core.clock().now());
    info!("linked ({direction:?})");
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(push_our_crl(conn.clone(), core.clone()).in_current_span());
    tasks.spawn(offer(conn.clone(), domain.clone(), core.clone()).in_current_span());
    tasks.spawn(relay(conn.clone(), domain.clone(), core.clone()).in_current_span());
    let per_link = Arc::new(PerLink::default());
    let mut judge = tokio::time::interval(JUDGE_EVERY);
    loop {
        tokio::select! {
            stream = conn.accept_bi() => match stream {
                Ok((send, recv)) => {
                    let (core, domain, cert, conn) = (core.clone(), domain.clone(), cert.clone(), conn.clone());
                    let per_link = per_link.clone();
                    tasks.spawn(async move {
                        handle_request(send, recv, &conn, (&domain, &cert), &core, &per_link).await
                    }.in_current_span());
                }
                Err(_) => break,
            },
            _ = judge.tick() => {
                if let Err(r) = f.judge(&domain, &cert, core.clock().now()) {
                    error!("link closed: {}", r.reason);
                    close(&conn, r.code, &r.reason);
                }
            }
            Some(_) = tasks.join_next() => {}
        }
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    f.disconnected(&domain, ticket);
    let reason = match conn.closed().await {
        quinn::ConnectionError::ApplicationClosed(c) => {
            String::from_utf8_lossy(&c.reason).into_owned()
        }
        quinn::ConnectionError::LocallyClosed => "closed by this hub".into(),
        other => other.to_string(),
    };
    let text = format!("link ended: {}", Clipped(&reason));
    info!("{text}");
    text
}

/// The arm above matches only the two beginnings of an upload.
fn unreachable_upload() -> Result<crate::link::upload::Upload, crate::link::refusal::Refusal> {
    Err(crate::link::refusal::Refusal::new(
        ErrorCode::BadRequest,
        "not the beginning of an upload",
    ))
}

/// The peer's new CRL may revoke the very hub that sent it.
fn revoked_now(
    f: &crate::state::federation::Federation,
    domain: &Domain,
    cert: &CertificateDer<'static>,
    conn: &quinn::Connection,
    core: &Core,
) {
    if let Err(r) = f.judge(domain, cert, core.clock().now()) {
        error!("link closed: {}", r.reason);
        close(conn, r.code, &r.reason);
    }
}

/// Send our CRL each time it changes.
async fn push_our_crl(conn: quinn::Connection, core: Arc<Core>) {
    let Some(f) = core.federation() else { return };
    let mut changes = f.watch_our_crl();
    changes.mark_unchanged();
    while changes.changed().await.is_ok() {
        let crl = core.trust().current().crl.der.to_vec();
        if let Err(e) =
            gongwen_common::stream::request_ok(&conn, &Message::CrlUpdate { crl }, READ_TIMEOUT)
                .await
        {
            warn!("could not pass our revocation list on: {}", Clipped(&e));
        }
    }
}

/// How often a link's relay looks at its queues without being woken.
const RELAY_RESCAN: Duration = Duration::from_secs(30);

/// Documents taken from a relay queue at once.
const RELAY_BATCH: usize = 16;

/// Hand the peer what waits for the domains it carries: documents (most
/// urgent first, each once: the peer answers a document it holds with its
/// `accepted` at once) and the receipts of our units for documents of
/// theirs. Until the link ends.
async fn relay(conn: quinn::Connection, peer: Domain, core: Arc<Core>) {
    let Some(f) = core.federation() else { return };
    let wake = f.relay_wake(&peer);
    // Documents the peer refused in a way its administrator may mend (a
    // signature it cannot judge yet, say): tried again after a rescan, and
    // meanwhile passed over, so they hold up nothing behind them.
    let mut passed_over = PassedOver::default();
    loop {
        let mut more = false;
        passed_over.expire(tokio::time::Instant::now());
        for domain in f.relayed_through(&peer) {
            let queue = gongwen_common::NodeId::relay_queue(&domain);
            match relay_documents(&conn, &queue, &domain, &core, &mut passed_over).await {
                Ok(full) => more |= full,
                Err(e) => {
                    warn!("relaying to {peer} stopped for now: {}", Clipped(&e));
                    if conn.close_reason().is_some() {
                        return;
                    }
                }
            }
            match relay_receipts(&conn, &queue, &core).await {
                Ok(full) => more |= full,
                Err(e) => {
                    warn!(
                        "passing receipts to {peer} stopped for now: {}",
                        Clipped(&e)
                    );
                    if conn.close_reason().is_some() {
                        return;
                    }
                }
            }
        }
        if !more {
            let rescan = passed_over
                .next_due(tokio::time::Instant::now())
                .map_or(RELAY_RESCAN, |next| next.min(RELAY_RESCAN));
            let _ = tokio::time::timeout(rescan, wake.notified()).await;
        }
    }
}

/// How long a document the peer refused for now is passed over.
const HOLD_BACK: Duration = Duration::from_secs(5);

/// Documents passed over for now, each until when, and the warnings
/// that say so (a few a minute).
#[derive(Default)]
struct PassedOver {
    until: std::collections::HashMap<gongwen_common::DocId, tokio::time::Instant>,
    warnings: crate::state::loglimit::Warnings,
}

impl PassedOver {
    fn hold(&mut self, doc: gongwen_common::DocId, domain: &Domain, why: &str) {
        self.until
            .insert(doc, tokio::time::Instant::now() + HOLD_BACK);
        if let Some(held_back) = self.warnings.allow(domain.as_str()) {
            warn!(doc = %doc, "the hub towards {domain} refused it for now; passed over for {} s: {}{held_back}", HOLD_BACK.as_secs(), Clipped(why));
        }
    }

    /// Forget those whose time is up.
    fn expire(&mut self, now: tokio::time::Instant) {
        self.until.retain(|_, until| *until > now);
    }

    /// How long until the first one's time is up (zero: it is).
    fn next_due(&self, now: tokio::time::Instant) -> Option<Duration> {
        self.until
            .values()
            .min()
            .map(|until| until.saturating_duration_since(now))
    }

    fn docs(&self) -> Vec<gongwen_common::DocId> {
        self.until.keys().copied().collect()
    }
}

/// How the next hub refused a document.
enum Refused {
    /// It can never take it (a unit it does not know, too large, not a
    /// document): the copies are marked undeliverable, never tried again.
    ForGood(String),
    /// Not as things stand there: passed over until a rescan.
    AsThingsStand(String),
    /// The link or the store failed: the relay stops until woken.
    Broken(String),
}

impl Refused {
    fn of(code: ErrorCode, message: String) -> Refused {
        match code {
            ErrorCode::UnknownRecipient
            | ErrorCode::TooLarge
            | ErrorCode::Malformed
            | ErrorCode::NotTheSender => Refused::ForGood(message),
            // An offline unit here has as many from this sender as it
            // may: the others still go.
            ErrorCode::QueueFull => Refused::AsThingsStand(message),
            c if c.is_retryable() => Refused::Broken(format!("refused for now: {message}")),
            _ => Refused::AsThingsStand(message),
        }
    }
}

/// Relay one batch of `queue`'s documents (for the units of `domain`).
/// `Ok(true)`: the batch was full (look again at once).
async fn relay_documents(
    conn: &quinn::Connection,
    queue: &gongwen_common::NodeId,
    domain: &Domain,
    core: &Core,
    passed_over: &mut PassedOver,
) -> Result<bool, String> {
    let store = core.store();
    let docs = store
        .claim_deliveries(queue, RELAY_BATCH, &passed_over.docs())
        .await
        .map_err(|e| e.to_string())?;
    let full = docs.len() == RELAY_BATCH;
    for doc_id in docs {
        match relay_document(conn, doc_id, core).await {
            Ok(()) => {
                store
                    .relayed(queue, doc_id)
                    .await
                    .map_err(|e| e.to_string())?;
                info!(doc = %doc_id, "handed on ({queue})");
            }
            Err(Refused::ForGood(why)) => {
                error!(doc = %doc_id, "the hub towards {domain} refused it for good: {}", Clipped(&why));
                undeliverable(core, queue, doc_id, domain, &why).await?;
            }
            Err(Refused::AsThingsStand(why)) => {
                let _ = store.release_delivery(queue, doc_id).await;
                passed_over.hold(doc_id, domain, &why);
            }
            Err(Refused::Broken(e)) => {
                let _ = store.release_delivery(queue, doc_id).await;
                return Err(format!("{doc_id}: {e}"));
            }
        }
    }
    Ok(full)
}

/// The copies of `doc_id` for `domain`'s units will never arrive: the
/// peer refused it for good (`why`).
async fn undeliverable(
    core: &Core,
    queue: &gongwen_common::NodeId,
    doc_id: gongwen_common::DocId,
    domain: &Domain,
    why: &str,
) -> Result<(), String> {
    let Some(doc) = core.store().doc(doc_id).await.map_err(|e| e.to_string())? else {
        return Ok(());
    };
    let recipients: Vec<_> = doc
        .recipients()
        .into_iter()
        .filter(|r| r.domain().as_ref() == Some(domain))
        .collect();
    let reason = format!(
        "无法送达：{domain} 方向的交换中心拒收（原因：{}）",
        Clipped(why)
    );
    mark_undeliverable(core, queue, &doc, recipients, reason).await
}

/// Mark `recipients`' copies of `doc` undeliverable for `reason`, out of
/// `queue`, and (for a document from elsewhere) tell it back towards its
/// sender, hub by hub.
async fn mark_undeliverable(
    core: &Core,
    queue: &gongwen_common::NodeId,
    doc: &crate::store::DocRecord,
    recipients: Vec<gongwen_common::NodeId>,
    reason: String,
) -> Result<(), String> {
    use gongwen_common::notice::{Notice, NoticeKind};
    let template = Notice {
        kind: NoticeKind::Undeliverable,
        doc_id: doc.doc_id,
        sender: doc.sender.clone(),
        title: doc.title.clone(),
        doc_number: doc.doc_number.clone(),
        recipient: doc.sender.clone(),
        deadline: None,
        late_seconds: 0,
        urge_count: 0,
        escalation_level: 0,
        at: gongwen_common::timefmt::rfc3339(core.clock().now()),
        reason: reason.clone(),
        pressed_by: None,
    };
    let marked = core
        .store()
        .undeliverable(
            queue,
            doc.doc_id,
            recipients,
            reason,
            Arc::new(move |r| {
                let mut n = template.clone();
                n.recipient = r.clone();
                n.to_bytes()
            }),
            core.now_ms(),
        )
        .await
        .map_err(|e| e.to_string())?;
    if !marked.is_empty() && !doc.sender.is_local() {
        core.wake_pushes(&doc.sender);
    }
    Ok(())
}

/// One document to the peer, as its sender sealed it: its header, then its
/// content from wherever an earlier attempt stopped.
async fn relay_document(
    conn: &quinn::Connection,
    doc_id: gongwen_common::DocId,
    core: &Core,
) -> Result<(), Refused> {
    let broken = |e: &dyn std::fmt::Display| Refused::Broken(e.to_string());
    let store = core.store();
    let (Some(doc), Some(header)) = (
        store.doc(doc_id).await.map_err(|e| broken(&e))?,
        store.header(doc_id).await.map_err(|e| broken(&e))?,
    ) else {
        return Err(Refused::AsThingsStand(
            "the document is not held here".into(),
        ));
    };
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| broken(&e))?;
    let _ = send.set_priority(doc.urgency.stream_priority());
    // A tree-form document is kept whole (its statement and every key's
    // leaf); it goes on as its sender uploaded it: the leaves, then the
    // statement.
    let header = match gongwen_common::envelope::tree::split_full(&header) {
        Some((statement, leaves)) => {
            for m in gongwen_common::wire::key_leaves_messages(doc_id, &leaves) {
                write_message(&mut send, &m).await.map_err(|e| broken(&e))?;
            }
            statement
        }
        None => header,
    };
    let begin = Message::UploadBegin {
        doc_id,
        header,
        content_len: doc.content_len,
    };
    write_message(&mut send, &begin)
        .await
        .map_err(|e| broken(&e))?;
    let offset = match read_message(&mut recv, gongwen_common::stream::DOCUMENT_WORK_TIMEOUT).await
    {
        Ok(Message::Accepted { .. }) => return Ok(()),
        Ok(Message::UploadFrom { offset }) => offset,
        Ok(Message::Error { code, message }) => return Err(Refused::of(code, message)),
        Ok(other) => return Err(broken(&format!("unexpected {}", other.describe()))),
        Err(e) => return Err(broken(&e)),
    };
    let mut chunks = store
        .read_content(doc_id, offset)
        .await
        .map_err(|e| broken(&e))?;
    let mut sent = offset;
    while let Some(chunk) = chunks.recv().await {
        let chunk = chunk.map_err(|e| broken(&format!("the content cannot be read here: {e}")))?;
        sent += chunk.len() as u64;
        if sent > doc.content_len / 2 && sent - (chunk.len() as u64) <= doc.content_len / 2 {
            gongwen_common::failpoint::hit("hub-relay-mid-content");
        }
        core.metrics().bytes_sent(chunk.len() as u64);
        send.write_chunk(chunk).await.map_err(|e| broken(&e))?;
    }
    if sent != doc.content_len {
        error!(doc = %doc_id, "the content this hub holds ends at byte {sent} of {}: the stored document is damaged", doc.content_len);
        return Err(broken(&format!(
            "this hub holds only {sent} of the document's {} bytes",
            doc.content_len
        )));
    }
    let _ = send.finish();
    match read_message(&mut recv, gongwen_common::stream::DOCUMENT_WORK_TIMEOUT).await {
        Ok(Message::Accepted { .. }) => Ok(()),
        Ok(Message::Error { code, message }) => Err(Refused::of(code, message)),
        Ok(other) => Err(broken(&format!("unexpected {}", other.describe()))),
        Err(e) => Err(broken(&e)),
    }
}

/// Pass one batch of receipts waiting in `queue` to the peer. A receipt
/// the peer refuses for good (it does not hold the document, a signature
/// it cannot accept) is dropped with a warning; one it cannot judge now
/// stays. `Ok(true)`: there may be more.
async fn relay_receipts(
    conn: &quinn::Connection,
    queue: &gongwen_common::NodeId,
    core: &Core,
) -> Result<bool, String> {
    const BATCH: usize = 64;
    let store = core.store();
    let pushes = store
        .claim_pushes(queue, BATCH)
        .await
        .map_err(|e| e.to_string())?;
    let full = pushes.len() == BATCH;
    let (mut taken, mut not_taken) = (Vec::new(), Vec::new());
    let mut stop = None;
    for (seq, push) in pushes {
        if stop.is_some() {
            not_taken.push(seq);
            continue;
        }
        match push {
            crate::store::Push::Receipt(receipt) => {
                match gongwen_common::stream::request(
                    conn,
                    &Message::ReceiptNotice { receipt },
                    READ_TIMEOUT,
                )
                .await
                {
                    Ok(Message::Ok) => taken.push(seq),
                    Ok(Message::Error { code, message }) if !code.is_retryable() => {
                        warn!("the peer refused a receipt for good: {}", Clipped(&message));
                        taken.push(seq);
                    }
                    Ok(Message::Error { message, .. }) => {
                        not_taken.push(seq);
                        stop = Some(message);
                    }
                    Ok(other) => {
                        not_taken.push(seq);
                        stop = Some(format!("unexpected {}", other.describe()));
                    }
                    Err(e) => {
                        not_taken.push(seq);
                        stop = Some(e.to_string());
                    }
                }
            }
            crate::store::Push::Notice(body) => {
                match gongwen_common::stream::request(conn, &Message::Notice { body }, READ_TIMEOUT)
                    .await
                {
                    Ok(Message::Ok) => taken.push(seq),
                    Ok(Message::Error { code, message }) if !code.is_retryable() => {
                        warn!("the peer refused a notice for good: {}", Clipped(&message));
                        taken.push(seq);
                    }
                    Ok(other) => {
                        not_taken.push(seq);
                        stop = Some(format!(
                            "the peer did not take a notice: {}",
                            other.describe()
                        ));
                    }
                    Err(e) => {
                        not_taken.push(seq);
                        stop = Some(e.to_string());
                    }
                }
            }
        }
    }
    store
        .forwarded(queue, taken, not_taken)
        .await
        .map_err(|e| e.to_string())?;
    match stop {
        Some(e) => Err(e),
        None => Ok(full),
    }
}

/// An urging (催办) or recall (撤回) notice the sender's hub issued for a
/// unit of a domain this hub carries or serves, handed on by the peer the
/// document came from: its addresses put as this hub names them, then
/// recorded and queued as this hub's own (an urge counts on the copy here
/// too; a recall withdraws the copies here).
async fn take_notice(
    body: &[u8],
    from: &Domain,
    core: &Core,
) -> Result<(), crate::link::refusal::Refusal> {
    use crate::link::refusal::Refusal;
    use gongwen_common::federation::localize;
    use gongwen_common::notice::{Notice, NoticeKind};
    let Some(f) = core.federation() else {
        return Err(Refusal::new(ErrorCode::BadRequest, "no [federation] here"));
    };
    let Some(mut notice) = Notice::from_bytes(body) else {
        return Err(Refusal::new(ErrorCode::Malformed, "not a notice"));
    };
    let here = f.domain().clone();
    notice.recipient = localize(&notice.recipient, from, Some(&here));
    notice.sender = localize(&notice.sender, from, Some(&here));
    let Some(doc) = core.store().doc(notice.doc_id).await? else {
        return Err(Refusal::new(
            ErrorCode::UnknownDocument,
            format!("this hub never carried document {}", notice.doc_id),
        ));
    };
    // Urges and recalls only the way the document came (its sender's
    // domain is one `from` carries); word that a copy cannot arrive only
    // from the way the copy went (its recipient's). Each for a copy this
    // hub keeps.
    let carried =
        |a: &gongwen_common::NodeId| a.domain().is_some_and(|d| f.carried_by(from).contains(&d));
    let right_way = match notice.kind {
        NoticeKind::Undeliverable => carried(&notice.recipient),
        _ => carried(&doc.sender),
    };
    if !right_way || !doc.recipients().contains(&notice.recipient) {
        warn!(peer = %from, doc = %doc.doc_id, "security: a notice for a copy this peer does not send was refused");
        return Err(Refusal::new(
            ErrorCode::BadRequest,
            "a notice comes the way its document came, for a copy carried here",
        ));
    }
    let now = core.now_ms();
    match notice.kind {
        NoticeKind::Urge => {
            let template = notice.clone();
            let urged = core
                .store()
                .urge_now(
                    doc.doc_id,
                    vec![notice.recipient.clone()],
                    now,
                    Arc::new(move |_, _, rec| {
                        let mut n = template.clone();
                        n.urge_count = rec.urge_count;
                        n.to_bytes()
                    }),
                )
                .await?;
            for r in &urged {
                core.wake_pushes(r);
            }
        }
        NoticeKind::Recall => {
            let template = notice.clone();
            let recalled = core
                .store()
                .recall(
                    doc.doc_id,
                    Arc::new(move |r| {
                        let mut n = template.clone();
                        n.recipient = r.clone();
                        n.to_bytes()
                    }),
                    now,
                )
                .await?;
            for r in &recalled.notified {
                core.wake_pushes(r);
            }
        }
        NoticeKind::Undeliverable => {
            let Some(domain) = notice.recipient.domain() else {
                return Err(Refusal::new(ErrorCode::BadRequest, "not a copy elsewhere"));
            };
            warn!(doc = %doc.doc_id, "{} cannot be delivered: {}", notice.recipient, Clipped(&notice.reason));
            let queue = gongwen_common::NodeId::relay_queue(&domain);
            mark_undeliverable(
                core,
                &queue,
                &doc,
                vec![notice.recipient.clone()],
                Clipped(&notice.reason).to_string(),
            )
            .await
            .map_err(|e| Refusal::new(ErrorCode::Storage, e))?;
        }
        NoticeKind::Supervise => {
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                "督办 notices go to the sender's own supervision office",
            ));
        }
    }
    Ok(())
}

/// Largest offer a peer may send: a directory of [`MAX_UNITS`] units
/// fits (the CA's signature and certificate beside it).
///
/// [`MAX_UNITS`]: gongwen_common::directory::MAX_UNITS
const MAX_OFFER: u64 = gongwen_common::directory::MAX_DIRECTORY_BODY as u64 + (64 << 10);

/// Hand an agent (protocol 8 on) the chains and CRLs of the other
/// domains, at the start and whenever they change. `handed`: the offers
/// version each round handed over (documents from elsewhere wait for the
/// one that holds what their acceptance needed: the agent could not judge
/// their senders before).
pub(crate) async fn trust_pusher(
    conn: quinn::Connection,
    core: Arc<Core>,
    handed: tokio::sync::watch::Sender<Option<u64>>,
) {
    let Some(f) = core.federation() else { return };
    let mut changes = f.watch_offers();
    let mut sent: std::collections::HashMap<(u8, Domain), [u8; 32]> = Default::default();
    loop {
        let version = *changes.borrow_and_update();
        for (kind, domain, bytes) in f.trust_for_agents() {
            let key = (kind as u8, domain.clone());
            let digest = gongwen_common::digest::sha256(&bytes);
            if sent.get(&key) == Some(&digest) {
                continue;
            }
            match send_offer(&conn, kind, &domain, &bytes).await {
                Ok(()) => {
                    sent.insert(key, digest);
                }
                Err(e) => {
                    if conn.close_reason().is_some() {
                        return;
                    }
                    warn!(
                        "the unit did not take the {} of {domain}: {}",
                        kind.as_str(),
                        Clipped(&e)
                    );
                    sent.insert(key, digest);
                }
            }
        }
        handed.send_replace(Some(version));
        if changes.changed().await.is_err() {
            return;
        }
    }
}

/// Hand the peer what we know of the other domains (chains, CRLs, unit
/// directories) and our own directory, at the start and whenever some of
/// it changed; each once, unless it changed again.
async fn offer(conn: quinn::Connection, to: Domain, core: Arc<Core>) {
    let Some(f) = core.federation() else { return };
    let mut changes = f.watch_offers();
    let mut sent: std::collections::HashMap<(u8, Domain), [u8; 32]> = Default::default();
    loop {
        changes.mark_unchanged();
        let own = match &core.config().tls.directory {
            Some(path) => tokio::fs::read(path).await.ok(),
            None => None,
        };
        for (kind, domain, bytes) in f.offers_for(&to, own) {
            let key = (kind as u8, domain.clone());
            let digest = gongwen_common::digest::sha256(&bytes);
            if sent.get(&key) == Some(&digest) {
                continue;
            }
            match send_offer(&conn, kind, &domain, &bytes).await {
                Ok(()) => {
                    sent.insert(key, digest);
                }
                Err(e) => {
                    // Refused (not routed there) or lost with the link:
                    // said once; offered again after the next change.
                    debug!("{to} did not take the {} of {domain}: {e}", kind.as_str());
                    sent.insert(key, digest);
                }
            }
        }
        if changes.changed().await.is_err() {
            return;
        }
    }
}

pub(crate) async fn send_offer(
    conn: &quinn::Connection,
    kind: gongwen_common::wire::PeerOfferKind,
    domain: &Domain,
    bytes: &[u8],
) -> Result<(), String> {
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
    let head = Message::PeerOffer {
        kind,
        domain: domain.to_string(),
        len: bytes.len() as u64,
    };
    write_message(&mut send, &head)
        .await
        .map_err(|e| e.to_string())?;
    send.write_all(bytes).await.map_err(|e| e.to_string())?;
    let _ = send.finish();
    match gongwen_common::stream::read_answer(&mut recv, READ_TIMEOUT).await {
        Ok(Message::Ok) => Ok(()),
        Ok(Message::Error { message, .. }) => Err(message),
        Ok(other) => Err(format!("unexpected answer: {}", other.describe())),
        Err(e) => Err(e.to_string()),
    }
}

/// How long `status` waits for a peer to say what its units passed on.
const CASCADE_WAIT: Duration = Duration::from_secs(5);

/// Ask the hub of `peer` what units passed `doc` on (转发), letting it ask
/// `hops` hubs further.
pub(crate) async fn ask_cascade(
    f: &crate::state::federation::Federation,
    peer: &Domain,
    doc: gongwen_common::DocId,
    hops: u8,
) -> Result<Vec<gongwen_common::supervision::ForwardedBy>, String> {
    let conn = f.link_to(peer).ok_or("not linked now")?;
    let query = serde_json::to_vec(&gongwen_common::supervision::Query::Cascade { doc, hops })
        .map_err(|e| e.to_string())?;
    let ask = Message::Supervise { query };
    let asked = gongwen_common::stream::request(&conn, &ask, CASCADE_WAIT);
    match tokio::time::timeout(CASCADE_WAIT, asked).await {
        Ok(Ok(Message::Json { body })) => serde_json::from_slice(&body)
            .map_err(|e| format!("its answer is not a list of forwards: {e}")),
        Ok(Ok(Message::Error { message, .. })) => Err(Clipped(&message).to_string()),
        Ok(Ok(other)) => Err(format!("it answered {}", other.describe())),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} s", CASCADE_WAIT.as_secs())),
    }
}

/// A peer asks what our units passed on of a document it handed us (the
/// only question a peer may ask): answered as `status` would show it here,
/// asking further hubs while the asker's `hops` allow.
async fn answer_cascade(query: &[u8], asker: &Domain, core: &Core) -> Result<Vec<u8>, String> {
    use gongwen_common::supervision::Query;
    let Some(f) = core.federation() else {
        return Err("no [federation] here".into());
    };
    let Ok(Query::Cascade { doc, hops }) = serde_json::from_slice::<Query>(query) else {
        return Err("a peer hub may ask only for a document's cascade".into());
    };
    // The document itself, or a forward of it, came from the asker's side.
    let from_asker = |sender: &gongwen_common::NodeId| {
        sender
            .domain()
            .is_some_and(|d| f.carried_by(asker).contains(&d))
    };
    let held = core.store().doc(doc).await.map_err(|e| e.to_string())?;
    let recipients = match &held {
        Some(d) if from_asker(&d.sender) => d.recipients(),
        _ => Vec::new(),
    };
    let found = crate::link::queries::forwards_held(core, doc).await?;
    let forward_from_asker = found
        .iter()
        .any(|k| gongwen_common::NodeId::parse_address(&k.by).is_ok_and(|by| from_asker(&by)));
    if recipients.is_empty() && !forward_from_asker {
        return Err(format!("this hub holds no document {doc} from {asker}"));
    }
    let hops = hops.min(crate::link::queries::CASCADE_HOPS);
    let (rows, _) =
        crate::link::queries::cascade_beyond(core, doc, &recipients, found, hops, Some(asker))
            .await;
    serde_json::to_vec(&rows).map_err(|e| e.to_string())
}

/// What one link's requests share: its warnings (a few a minute) and
/// the one cascade question answered at a time (each reads every
/// document this hub holds).
struct PerLink {
    warnings: crate::state::loglimit::Warnings,
    questions: tokio::sync::Semaphore,
}

impl Default for PerLink {
    fn default() -> Self {
        PerLink {
            warnings: Default::default(),
            questions: tokio::sync::Semaphore::new(1),
        }
    }
}

async fn handle_request(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    conn: &quinn::Connection,
    (domain, cert): (&Domain, &CertificateDer<'static>),
    core: &Arc<Core>,
    per_link: &PerLink,
) {
    let warnings = &per_link.warnings;
    let Some(f) = core.federation() else { return };
    let answer = match read_message(&mut recv, READ_TIMEOUT).await {
        Ok(first @ (Message::UploadBegin { .. } | Message::KeyLeaves { .. })) => {
            // A tree-form document comes as it came from its sender: the
            // leaves of its keys first, then its statement.
            let upload = match first {
                Message::UploadBegin {
                    doc_id,
                    header,
                    content_len,
                } => Ok(crate::link::upload::Upload {
                    doc_id,
                    header,
                    content_len,
                    leaves: None,
                }),
                Message::KeyLeaves { doc_id, leaves } => {
                    crate::link::session::gather_leaves(&mut recv, doc_id, leaves).await
                }
                _ => unreachable_upload(),
            };
            let upload = match upload {
                Ok(u) => u,
                Err(r) => {
                    let answer = Message::Error {
                        code: r.code,
                        message: r.message,
                    };
                    let _ = write_message(&mut send, &answer).await;
                    let _ = send.finish();
                    return;
                }
            };
            let doc_id = upload.doc_id;
            let span = info_span!("relayed", doc = %doc_id);
            match crate::link::upload::receive(
                &mut send,
                &mut recv,
                crate::link::upload::Origin::Peer(domain),
                core,
                warnings,
                upload,
            )
            .instrument(span)
            .await
            {
                Ok(m) => m,
                Err(r) => Message::Error {
                    code: r.code,
                    message: r.message,
                },
            }
        }
        Ok(Message::Notice { body }) => match take_notice(&body, domain, core).await {
            Ok(()) => Message::Ok,
            Err(r) => Message::Error {
                code: r.code,
                message: r.message,
            },
        },
        Ok(Message::ReceiptNotice { receipt }) => {
            match crate::link::receipts::record_relayed(&receipt, domain, core).await {
                Ok(_) => Message::Ok,
                Err(r) => Message::Error {
                    code: r.code,
                    message: r.message,
                },
            }
        }
        Ok(Message::PeerOffer {
            kind,
            domain: about,
            len,
        }) => match Domain::parse(&about) {
            Err(e) => Message::Error {
                code: ErrorCode::Malformed,
                message: e.to_string(),
            },
            Ok(_) if len > MAX_OFFER => Message::Error {
                code: ErrorCode::TooLarge,
                message: format!("an offer of {len} bytes is larger than {MAX_OFFER}"),
            },
            Ok(about) => match tokio::time::timeout(
                gongwen_common::stream::DOCUMENT_WORK_TIMEOUT,
                recv.read_to_end(len as usize),
            )
            .await
            {
                Ok(Ok(bytes)) if bytes.len() as u64 == len => {
                    let taken = {
                        let (domain, about) = (domain.clone(), about.clone());
                        updating_trust(core, move |f| f.take_offer(&domain, kind, &about, &bytes))
                            .await
                    };
                    match taken {
                        Ok(new) => {
                            if new {
                                info!("took the {} of {about}", kind.as_str());
                                core.address_books().changed();
                                if about == *domain
                                    && kind == gongwen_common::wire::PeerOfferKind::Crl
                                {
                                    revoked_now(f, domain, cert, conn, core);
                                }
                            }
                            Message::Ok
                        }
                        Err(e) => {
                            debug!("refused the {} of {about}: {e}", kind.as_str());
                            Message::Error {
                                code: ErrorCode::BadRequest,
                                message: e,
                            }
                        }
                    }
                }
                Ok(Ok(bytes)) => Message::Error {
                    code: ErrorCode::ContentMismatch,
                    message: format!("{} bytes came, {len} were announced", bytes.len()),
                },
                Ok(Err(e)) => {
                    debug!("offer stream: {e}");
                    return;
                }
                Err(_) => {
                    debug!("offer of {len} bytes not finished in time");
                    return;
                }
            },
        },
        Ok(Message::CrlUpdate { crl }) => match take_peer_crl(core, domain, crl).await {
            Ok(new) => {
                if new {
                    info!("took {domain}'s new revocation list");
                    f.offers_changed();
                }
                // The new list may revoke the very hub that sent it.
                if let Err(r) = f.judge(domain, cert, core.clock().now()) {
                    error!("link closed: {}", r.reason);
                    close(conn, r.code, &r.reason);
                }
                Message::Ok
            }
            Err(e) => {
                warn!("{e}");
                Message::Error {
                    code: ErrorCode::Malformed,
                    message: e,
                }
            }
        },
        Ok(Message::Supervise { query }) => {
            match tokio::time::timeout(CASCADE_WAIT, per_link.questions.acquire()).await {
                Err(_) | Ok(Err(_)) => Message::Error {
                    code: ErrorCode::NotNow,
                    message:
                        "one question at a time on a link, and the one before is not answered yet"
                            .into(),
                },
                Ok(Ok(_one)) => match answer_cascade(&query, domain, core).await {
                    Ok(body) => {
                        // A forward to thousands of units is more than one frame.
                        for m in gongwen_common::stream::json_frames(body, true) {
                            if let Err(e) = write_message(&mut send, &m).await {
                                debug!("could not answer the peer: {e}");
                                return;
                            }
                        }
                        let _ = send.finish();
                        return;
                    }
                    Err(message) => Message::Error {
                        code: ErrorCode::BadRequest,
                        message,
                    },
                },
            }
        }
        Ok(other) => Message::Error {
            code: ErrorCode::BadRequest,
            message: format!("a peer hub does not take {} yet", other.kind()),
        },
        Err(e) => {
            debug!("peer request stream: {e}");
            return;
        }
    };
    if let Err(e) = write_message(&mut send, &answer).await {
        debug!("could not answer the peer: {e}");
    }
    let _ = send.finish();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redialing_backs_off_to_thirty_seconds_and_starts_again_after_a_link_that_held() {
        let failed = Duration::from_millis(20);
        let mut wait = Duration::from_millis(500);
        let mut waits = Vec::new();
        for _ in 0..8 {
            wait = redial_wait(wait, failed);
            waits.push(wait.as_secs());
        }
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(
            redial_wait(MAX_REDIAL, Duration::from_secs(61)),
            Duration::from_secs(1)
        );
        // A link that broke within the minute does not reset it.
        assert_eq!(
            redial_wait(Duration::from_secs(8), Duration::from_secs(59)).as_secs(),
            16
        );
    }
}
