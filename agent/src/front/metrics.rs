//! `[metrics] listen` at a unit: `/metrics` for Prometheus and `/healthz`
//! (200 while connected to a hub, 503 with the reason otherwise), over
//! plain HTTP — keep it on loopback or the management network.
//!
//! Everything is a level read at scrape time from what the agent already
//! keeps: the link, its spool and its store. Rendering is
//! [`render`], a plain function over [`AgentLevels`].

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::link::state::LinkState;
use crate::unit::identity::Identity;
use crate::unit::store::ReceivedFilter;

/// What `/metrics` shows at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentLevels {
    pub connected: bool,
    /// Documents in the spool: taken from the outbox, not yet accepted.
    pub waiting_to_send: u64,
    /// Documents the hub accepted from this unit, ever.
    pub sent: u64,
    /// Documents received, ever.
    pub received: u64,
    /// Received and neither signed for nor returned yet.
    pub unanswered: u64,
    /// Seconds until this unit's certificate expires.
    pub certificate_expiry_seconds: f64,
}

/// The exposition (OpenMetrics text) of `levels`.
pub fn render(levels: &AgentLevels) -> String {
    let mut r = Registry::default();
    let gauge = |v: i64| {
        let g: Gauge = Gauge::default();
        g.set(v);
        g
    };
    let counter = |v: u64| {
        let c: Counter = Counter::default();
        c.inc_by(v);
        c
    };
    r.register(
        "gongwen_agent_connected",
        "1 while the agent is connected to a hub",
        gauge(i64::from(levels.connected)),
    );
    r.register(
        "gongwen_agent_outbox_waiting",
        "Documents taken from the outbox and not yet accepted by the hub",
        gauge(levels.waiting_to_send as i64),
    );
    r.register(
        "gongwen_agent_documents_sent",
        "Documents the hub accepted from this unit",
        counter(levels.sent),
    );
    r.register(
        "gongwen_agent_documents_received",
        "Documents this unit received",
        counter(levels.received),
    );
    r.register(
        "gongwen_agent_inbox_unanswered",
        "Received documents neither signed for nor returned",
        gauge(levels.unanswered as i64),
    );
    let expiry = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
    expiry.set(levels.certificate_expiry_seconds);
    r.register_with_unit(
        "gongwen_agent_certificate_expiry",
        "Time until this unit's certificate expires",
        Unit::Seconds,
        expiry,
    );
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &r);
    out
}

/// `/healthz`'s answer for a link state: `Ok(text)` or `Err(reason)`.
pub fn health(link: &LinkState) -> Result<String, String> {
    match link {
        LinkState::Connected { addr, .. } => Ok(format!("ok: connected to the hub at {addr}")),
        LinkState::Starting => Err("starting: the first connection has not finished".into()),
        LinkState::Disconnected { error, .. } => Err(format!("not connected to any hub: {error}")),
    }
}

#[derive(Clone)]
struct Shared {
    me: Arc<Identity>,
    store: crate::unit::store::Store,
    link: watch::Receiver<LinkState>,
    cert_not_after: OffsetDateTime,
}

/// Serve until the task is aborted.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    me: Arc<Identity>,
    store: crate::unit::store::Store,
    link: watch::Receiver<LinkState>,
    cert_not_after: OffsetDateTime,
) {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(Shared {
            me,
            store,
            link,
            cert_not_after,
        });
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!("the metrics listener stopped: {e}");
    }
}

async fn metrics(State(s): State<Shared>) -> impl IntoResponse {
    let connected = matches!(*s.link.borrow(), LinkState::Connected { .. });
    // File and store reads on a blocking thread, not the server's.
    let me = s.me.clone();
    let counts = s
        .store
        .run(move |st| {
            let waiting =
                crate::outgoing::spool::ids(me.folders()).map_or(0, |ids| ids.len() as u64);
            let received = st.all_received()?;
            let pending = ReceivedFilter::pending();
            Ok::<_, crate::unit::store::StoreError>((
                st.all_sent()?.len() as u64,
                received.len() as u64,
                received.iter().filter(|r| pending.matches(r)).count() as u64,
                waiting,
            ))
        })
        .await
        .unwrap_or_default();
    let levels = AgentLevels {
        connected,
        waiting_to_send: counts.3,
        sent: counts.0,
        received: counts.1,
        unanswered: counts.2,
        certificate_expiry_seconds: (s.cert_not_after - s.me.clock().now()).as_seconds_f64(),
    };
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        render(&levels),
    )
}

async fn healthz(State(s): State<Shared>) -> impl IntoResponse {
    match health(&s.link.borrow()) {
        Ok(text) => (StatusCode::OK, format!("{text}\n")),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("unhealthy: {why}\n"),
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn levels_render_with_their_names() {
        let text = render(&AgentLevels {
            connected: true,
            waiting_to_send: 2,
            sent: 5,
            received: 7,
            unanswered: 3,
            certificate_expiry_seconds: 86400.0,
        });
        for line in [
            "gongwen_agent_connected 1",
            "gongwen_agent_outbox_waiting 2",
            "gongwen_agent_documents_sent_total 5",
            "gongwen_agent_documents_received_total 7",
            "gongwen_agent_inbox_unanswered 3",
            "gongwen_agent_certificate_expiry_seconds 86400.0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }

    #[test]
    fn health_follows_the_link() {
        assert!(health(&LinkState::Starting).is_err());
        let up = LinkState::Connected {
            hub: gongwen_common::NodeId::parse("hub").unwrap(),
            addr: "127.0.0.1:7443".parse().unwrap(),
            since_ms: 0,
            clock_offset_ms: 0,
        };
        assert_eq!(
            health(&up).unwrap(),
            "ok: connected to the hub at 127.0.0.1:7443"
        );
    }
}
