//! What the hub tells Prometheus (`[metrics] listen`, `/metrics`), and the
//! words of `/healthz`.
//!
//! Counters and histograms are counted as things happen ([`Metrics`]'s
//! methods, called where they happen). Levels — units connected, copies
//! waiting per unit, overdue copies, time left on the CRL and on each
//! certificate — are read at each scrape into a [`Levels`] and rendered
//! with the counters by [`Metrics::render`], a plain function over values.
//!
//! Names start with `gongwen_`, counters end in `_total`, durations are in
//! seconds and sizes in bytes. No document id is ever a label (one series
//! per document would grow without end); units are, since there are a few
//! hundred and they are what an operator looks for.

use std::time::Duration;

use gongwen_common::receipt::ReceiptKind;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabel {
    action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WhyLabel {
    why: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UnitLabel {
    unit: String,
}

/// From 5 ms to about 3 h in 16 steps of ×3: a small notice and a 4 GiB
/// upload over a slow county line both land in a bucket.
fn duration_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 3.0, 16))
}

/// The hub's counters and histograms since it started.
#[derive(Debug)]
pub struct Metrics {
    accepted: Counter,
    delivered: Counter,
    quarantined: Counter,
    quota_refusals: Counter,
    receipts: Family<KindLabel, Counter>,
    escalation_steps: Family<ActionLabel, Counter>,
    turned_away: Family<WhyLabel, Counter>,
    received_bytes: Counter,
    sent_bytes: Counter,
    upload_seconds: Histogram,
    delivery_seconds: Histogram,
    store_commit_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            accepted: Counter::default(),
            delivered: Counter::default(),
            quarantined: Counter::default(),
            quota_refusals: Counter::default(),
            receipts: Family::default(),
            escalation_steps: Family::default(),
            turned_away: Family::default(),
            received_bytes: Counter::default(),
            sent_bytes: Counter::default(),
            upload_seconds: duration_buckets(),
            delivery_seconds: duration_buckets(),
            // Commits take milliseconds: from 0.1 ms to about 2 min.
            store_commit_seconds: Histogram::new(exponential_buckets(0.0001, 3.0, 14)),
        }
    }
}

/// Levels read at scrape time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Levels {
    /// Units that can receive (enrolled, or published a key).
    pub units_known: u64,
    pub units_connected: u64,
    /// The most connections the hub admits at once.
    pub max_connections: u64,
    /// Copies waiting at the hub for each unit (not yet delivered).
    pub pending: Vec<(String, u64)>,
    /// Copies past their deadline and not signed for, returned or recalled.
    pub overdue: u64,
    /// Seconds until the CRL must be renewed (negative once stale).
    pub crl_next_update_seconds: Option<f64>,
    /// Seconds until each unit's (and this hub's) certificate expires.
    pub certificate_expiry_seconds: Vec<(String, f64)>,
    /// Whether to give the two lists above unit by unit (else only their
    /// sum and minimum: `[metrics] per_unit`).
    pub per_unit: bool,
}

impl Metrics {
    /// A document was accepted (its upload took `took`).
    pub fn document_accepted(&self, took: Duration) {
        self.accepted.inc();
        self.upload_seconds.observe(took.as_secs_f64());
    }

    /// A new receipt was recorded (the hub's own `accepted` included).
    pub fn receipt_recorded(&self, kind: ReceiptKind) {
        self.receipts
            .get_or_create(&KindLabel {
                kind: kind.as_str(),
            })
            .inc();
        match kind {
            ReceiptKind::Delivered => {
                self.delivered.inc();
            }
            ReceiptKind::Quarantined => {
                self.quarantined.inc();
            }
            _ => {}
        }
    }

    /// An upload was refused: its sender already has as many documents
    /// waiting for an offline recipient as it may.
    pub fn quota_refused(&self) {
        self.quota_refusals.inc();
    }

    /// A delivery to a unit ended with its receipt after `took`.
    pub fn delivery_took(&self, took: Duration) {
        self.delivery_seconds.observe(took.as_secs_f64());
    }

    /// An escalation step ran (`urge` or `supervise`).
    pub fn escalation_step(&self, action: &'static str) {
        self.escalation_steps
            .get_or_create(&ActionLabel { action })
            .inc();
    }

    /// The gate turned a connection attempt away (or asked it to prove
    /// its address).
    pub fn turned_away(&self, gate: crate::rules::admission::Gate) {
        use crate::rules::admission::{Gate, RefuseWhy};
        let why = match gate {
            Gate::Accept => return,
            Gate::Retry => "retry",
            Gate::Refuse(RefuseWhy::Full) => "full",
            Gate::Refuse(RefuseWhy::TooManyHandshakes) => "handshakes",
            Gate::Refuse(RefuseWhy::TooManyFromAddress) => "address",
        };
        self.turned_away.get_or_create(&WhyLabel { why }).inc();
    }

    pub fn bytes_received(&self, n: u64) {
        self.received_bytes.inc_by(n);
    }

    pub fn bytes_sent(&self, n: u64) {
        self.sent_bytes.inc_by(n);
    }

    /// Where the group committer records how long each commit took.
    pub fn store_commit_seconds(&self) -> Histogram {
        self.store_commit_seconds.clone()
    }

    /// The exposition (OpenMetrics text, which Prometheus reads) of the
    /// counters and of `levels`.
    pub fn render(&self, levels: &Levels) -> String {
        let mut r = Registry::default();
        r.register(
            "gongwen_documents_accepted",
            "Documents accepted by the hub",
            self.accepted.clone(),
        );
        r.register(
            "gongwen_documents_delivered",
            "Copies delivered to a recipient unit (its delivered receipt recorded)",
            self.delivered.clone(),
        );
        r.register(
            "gongwen_documents_quarantined",
            "Copies a recipient unit quarantined (could not open or verify)",
            self.quarantined.clone(),
        );
        r.register(
            "gongwen_uploads_refused_queue_full",
            "Uploads refused because their sender already had max_queued_per_sender documents waiting for an offline recipient",
            self.quota_refusals.clone(),
        );
        r.register(
            "gongwen_receipts",
            "Receipts recorded, by kind",
            self.receipts.clone(),
        );
        r.register(
            "gongwen_escalation_steps",
            "Escalation steps run, by action (urge 催办, supervise 督办)",
            self.escalation_steps.clone(),
        );
        r.register(
            "gongwen_connections_turned_away",
            "Connection attempts turned away before their handshake, by why: full (max_connections open), handshakes (too many unfinished), address (too many from one address), retry (asked to prove their address)",
            self.turned_away.clone(),
        );
        r.register_with_unit(
            "gongwen_received",
            "Document content received from units",
            Unit::Bytes,
            self.received_bytes.clone(),
        );
        r.register_with_unit(
            "gongwen_sent",
            "Document content sent to units",
            Unit::Bytes,
            self.sent_bytes.clone(),
        );
        r.register_with_unit(
            "gongwen_upload_duration",
            "Time from an upload's start to its acceptance",
            Unit::Seconds,
            self.upload_seconds.clone(),
        );
        r.register_with_unit(
            "gongwen_delivery_duration",
            "Time from offering a document to a unit to its receipt",
            Unit::Seconds,
            self.delivery_seconds.clone(),
        );
        r.register_with_unit(
            "gongwen_store_commit_duration",
            "Time of each group commit of accepts and delivery receipts",
            Unit::Seconds,
            self.store_commit_seconds.clone(),
        );

        let gauge = |v: i64| {
            let g: Gauge = Gauge::default();
            g.set(v);
            g
        };
        r.register(
            "gongwen_units_known",
            "Units that can receive (enrolled or with a published key)",
            gauge(levels.units_known as i64),
        );
        r.register(
            "gongwen_units_connected",
            "Units connected to this hub",
            gauge(levels.units_connected as i64),
        );
        r.register(
            "gongwen_connections_max",
            "The most connections this hub admits at once (limits.max_connections, or from the enrolled units)",
            gauge(levels.max_connections as i64),
        );
        // Sums and extremes for any number of units; per unit only when
        // asked (a national hub would serve 100,000 lines a scrape).
        r.register(
            "gongwen_deliveries_waiting",
            "Copies waiting at the hub, for all units",
            gauge(levels.pending.iter().map(|(_, n)| *n as i64).sum()),
        );
        let soonest = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        soonest.set(
            levels
                .certificate_expiry_seconds
                .iter()
                .map(|(_, s)| *s)
                .fold(f64::INFINITY, f64::min)
                .min(f64::MAX),
        );
        r.register_with_unit(
            "gongwen_certificate_expiry_soonest",
            "Time until the first of the units' (and the hub's) certificates expires",
            Unit::Seconds,
            soonest,
        );
        if levels.per_unit {
            let pending = Family::<UnitLabel, Gauge>::default();
            for (unit, n) in &levels.pending {
                pending
                    .get_or_create(&UnitLabel { unit: unit.clone() })
                    .set(*n as i64);
            }
            r.register(
                "gongwen_deliveries_pending",
                "Copies waiting at the hub for each unit",
                pending,
            );
        }
        r.register(
            "gongwen_overdue_items",
            "Copies past their deadline, not signed for, returned or recalled",
            gauge(levels.overdue as i64),
        );
        if let Some(s) = levels.crl_next_update_seconds {
            let g = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
            g.set(s);
            r.register_with_unit(
                "gongwen_crl_next_update",
                "Time until the CRL must be renewed (negative: stale, every unit refused)",
                Unit::Seconds,
                g,
            );
        }
        if levels.per_unit {
            let expiry = Family::<UnitLabel, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
            for (unit, s) in &levels.certificate_expiry_seconds {
                expiry
                    .get_or_create(&UnitLabel { unit: unit.clone() })
                    .set(*s);
            }
            r.register_with_unit(
                "gongwen_certificate_expiry",
                "Time until each unit's certificate (and the hub's) expires",
                Unit::Seconds,
                expiry,
            );
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &r);
        out
    }
}

/// Why the hub is not healthy, in plain words; `None` when it serves.
pub fn unhealthy(
    serving: bool,
    crl_stale_since: Option<String>,
    store: Result<(), String>,
) -> Option<String> {
    let mut why = Vec::new();
    if !serving {
        why.push("the QUIC listener is down: units cannot connect".to_string());
    }
    if let Some(since) = crl_stale_since {
        why.push(format!(
            "the revocation list went stale at {since}: every unit is refused until it is renewed (gongwen-certs crl)"
        ));
    }
    if let Err(e) = store {
        why.push(format!("the store cannot be read: {e}"));
    }
    (!why.is_empty()).then(|| why.join("; "))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .map(|v| v.parse().unwrap())
    }

    #[test]
    fn counters_levels_and_histograms_render_with_their_units() {
        let m = Metrics::default();
        m.document_accepted(Duration::from_millis(40));
        m.receipt_recorded(ReceiptKind::Accepted);
        m.receipt_recorded(ReceiptKind::Delivered);
        m.receipt_recorded(ReceiptKind::Delivered);
        m.receipt_recorded(ReceiptKind::Quarantined);
        m.escalation_step("urge");
        m.bytes_received(1000);
        m.bytes_sent(2000);
        m.turned_away(crate::rules::admission::Gate::Refuse(
            crate::rules::admission::RefuseWhy::Full,
        ));
        let text = m.render(&Levels {
            units_known: 3,
            units_connected: 2,
            max_connections: 1024,
            pending: vec![("daqing-gov".into(), 4)],
            overdue: 1,
            crl_next_update_seconds: Some(86400.0),
            certificate_expiry_seconds: vec![("harbin-gov".into(), 3600.5)],
            per_unit: true,
        });
        for (series, want) in [
            ("gongwen_documents_accepted_total", 1.0),
            ("gongwen_documents_delivered_total", 2.0),
            ("gongwen_documents_quarantined_total", 1.0),
            ("gongwen_receipts_total{kind=\"delivered\"}", 2.0),
            ("gongwen_escalation_steps_total{action=\"urge\"}", 1.0),
            ("gongwen_received_bytes_total", 1000.0),
            ("gongwen_sent_bytes_total", 2000.0),
            ("gongwen_units_known", 3.0),
            ("gongwen_units_connected", 2.0),
            ("gongwen_connections_max", 1024.0),
            ("gongwen_connections_turned_away_total{why=\"full\"}", 1.0),
            ("gongwen_deliveries_pending{unit=\"daqing-gov\"}", 4.0),
            ("gongwen_overdue_items", 1.0),
            ("gongwen_crl_next_update_seconds", 86400.0),
            (
                "gongwen_certificate_expiry_seconds{unit=\"harbin-gov\"}",
                3600.5,
            ),
            ("gongwen_upload_duration_seconds_count", 1.0),
            ("gongwen_deliveries_waiting", 4.0),
            ("gongwen_certificate_expiry_soonest_seconds", 3600.5),
        ] {
            assert_eq!(value(&text, series), Some(want), "{series} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn without_per_unit_series_the_sums_and_the_soonest_expiry_remain() {
        let levels = Levels {
            pending: (0..10_000).map(|i| (format!("county-{i:05}"), 2)).collect(),
            certificate_expiry_seconds: (0..10_000)
                .map(|i| (format!("county-{i:05}"), 86_400.0 + f64::from(i)))
                .collect(),
            per_unit: false,
            ..Levels::default()
        };
        let text = Metrics::default().render(&levels);
        assert_eq!(value(&text, "gongwen_deliveries_waiting"), Some(20_000.0));
        assert_eq!(
            value(&text, "gongwen_certificate_expiry_soonest_seconds"),
            Some(86_400.0)
        );
        assert!(!text.contains("county-"), "per-unit series were served");
        assert!(text.lines().count() < 200, "{} lines", text.lines().count());
    }

    /// The shipped Grafana dashboard names only series the hub exposes.
    #[test]
    fn the_dashboard_asks_only_for_what_the_hub_serves() {
        let dashboard = include_str!("../../../deploy/grafana/gongwen-hub.json");
        let m = Metrics::default();
        m.document_accepted(Duration::from_millis(1));
        m.receipt_recorded(ReceiptKind::Accepted);
        m.escalation_step("urge");
        let text = m.render(&Levels {
            crl_next_update_seconds: Some(1.0),
            pending: vec![("a-gov".into(), 1)],
            certificate_expiry_seconds: vec![("a-gov".into(), 1.0)],
            per_unit: true,
            ..Levels::default()
        });
        let mut asked = 0;
        for (at, _) in dashboard.match_indices("gongwen_") {
            let name: String = dashboard[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if name == "gongwen_hub" || name.starts_with("gongwen_agent") {
                continue;
            }
            asked += 1;
            assert!(
                text.lines()
                    .any(|l| l.starts_with(&format!("{name}{{"))
                        || l.starts_with(&format!("{name} "))),
                "the dashboard asks for {name}, which the hub does not serve"
            );
        }
        assert!(asked > 10, "{asked}");
    }

    #[test]
    fn health_names_every_reason() {
        assert_eq!(unhealthy(true, None, Ok(())), None);
        let why = unhealthy(
            false,
            Some("2026-12-01T00:00:00Z".into()),
            Err("connection refused".into()),
        )
        .unwrap();
        assert!(why.contains("listener is down"), "{why}");
        assert!(
            why.contains("revocation list went stale at 2026-12-01"),
            "{why}"
        );
        assert!(
            why.contains("store cannot be read: connection refused"),
            "{why}"
        );
    }
}
