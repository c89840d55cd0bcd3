//! `[metrics] listen`: `/metrics` for Prometheus and `/healthz` for load
//! balancers and monitoring, over plain HTTP (keep it on loopback or the
//! management network: it says which units are connected).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use gongwen_common::pki::CertIdentity;
use time::OffsetDateTime;

use crate::rules::lifecycle::DeliveryState;
use crate::state::core::Core;
use crate::state::metrics::{Levels, unhealthy};

/// Serve until the task is aborted.
pub(crate) async fn serve(listener: tokio::net::TcpListener, core: Arc<Core>) {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(core);
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!("the metrics listener stopped: {e}");
    }
}

async fn metrics(State(core): State<Arc<Core>>) -> impl IntoResponse {
    let levels = levels(&core).await;
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        core.metrics().render(&levels),
    )
}

async fn healthz(State(core): State<Arc<Core>>) -> impl IntoResponse {
    let now = core.clock().now();
    let stale = {
        let trust = core.trust().current();
        trust
            .crl
            .is_stale(now)
            .then(|| trust.crl.next_update.map(gongwen_common::timefmt::rfc3339))
            .map(Option::unwrap_or_default)
    };
    let store = core.store().ping().await.map_err(|e| e.to_string());
    match unhealthy(core.is_serving(), stale, store) {
        None => (StatusCode::OK, "ok: serving\n".to_string()),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("unhealthy: {why}\n"),
        ),
    }
}

/// The levels of the moment. A store that cannot be read leaves the
/// store's levels out (and /healthz says why) rather than failing the
/// scrape: the counters still count.
async fn levels(core: &Core) -> Levels {
    let now = core.clock().now();
    let enrolled = core.enrolled().current();
    let published = core.store().bindings().await.unwrap_or_default();
    let mut known: BTreeMap<String, Option<OffsetDateTime>> = BTreeMap::new();
    // Certificates as the hub last saw them: the binding's signer.
    let binding_expiry = |b: &[u8]| {
        gongwen_common::envelope::ReachKey::statement_of(b)
            .and_then(|st| CertIdentity::from_der(&st.cert).ok())
            .map(|who| who.not_after)
    };
    for e in &enrolled.directory.entries {
        known.insert(e.id.to_string(), binding_expiry(&e.binding));
    }
    for (id, b) in &published {
        let at = binding_expiry(b);
        let entry = known.entry(id.to_string()).or_insert(at);
        if at > *entry {
            *entry = at;
        }
    }
    // A connected unit's live certificate is the one that counts.
    for (id, not_after) in core.units().expiries() {
        known.insert(id.to_string(), Some(not_after));
    }
    let mut expiry: Vec<(String, f64)> = known
        .iter()
        .filter_map(|(id, t)| t.map(|t| (id.clone(), seconds_between(now, t))))
        .collect();
    expiry.push((
        core.id().to_string(),
        seconds_between(now, core.own_not_after()),
    ));

    let mut pending: BTreeMap<String, u64> = BTreeMap::new();
    let mut overdue = 0;
    if let Ok(all) = core.store().all_deliveries().await {
        let now_ms = core.now_ms();
        for (doc, copies) in &all {
            for (unit, d) in copies {
                if d.state == DeliveryState::Queued {
                    *pending.entry(unit.to_string()).or_default() += 1;
                }
                if crate::rules::supervision::is_overdue(doc, unit, d, now_ms) {
                    overdue += 1;
                }
            }
        }
    }
    Levels {
        units_known: known.len() as u64,
        units_connected: core.units().rows().iter().filter(|r| r.connected).count() as u64,
        max_connections: crate::rules::admission::max_connections(
            core.config().max_connections,
            core.enrolled().current().directory.entries.len(),
        ) as u64,
        pending: pending.into_iter().collect(),
        overdue,
        crl_next_update_seconds: core
            .trust()
            .current()
            .crl
            .next_update
            .map(|t| seconds_between(now, t)),
        per_unit: core
            .config()
            .metrics
            .as_ref()
            .and_then(|m| m.per_unit)
            .unwrap_or(known.len() <= gongwen_common::config::PER_UNIT_SERIES_UP_TO),
        certificate_expiry_seconds: expiry,
    }
}

fn seconds_between(now: OffsetDateTime, then: OffsetDateTime) -> f64 {
    (then - now).as_seconds_f64()
}
