//! `[metrics] listen`: /metrics read by the Prometheus project's own parser
//! while documents flow (the figures move), and /healthz turning 503 with
//! the reason when the CRL goes stale.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gongwen_common::Role;
use gongwen_tests::{Net, RunningAgent, prom, wait_all_delivered, wait_inbox};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_as_documents_flow_and_health_says_why_it_fails() {
    if !prom::available() {
        return;
    }
    let net = Net::new();
    net.issue("harbin-gov", Role::Node);
    net.issue("daqing-gov", Role::Node);
    let config = net.hub_config_as(
        "hub",
        "127.0.0.1:0".parse().unwrap(),
        "[metrics]\nlisten = \"127.0.0.1:0\"\n",
    );
    let hub = net
        .start_hub_config(config, gongwen_common::clock::system())
        .await;
    let at = hub.metrics.expect("the hub serves metrics");

    let (status, text) = prom::get(at, "/healthz").await;
    assert_eq!((status, text.as_str()), (200, "ok: serving\n"));
    let before = prom::scrape(at).await;
    assert_eq!(before.value("gongwen_documents_accepted_total"), 0.0);
    assert_eq!(before.kind("gongwen_documents_accepted_total"), "counter");
    assert_eq!(before.value("gongwen_units_connected"), 0.0);
    // The hub's own certificate (the test CA issues for 30 days) is there from the start.
    let own = before.value("gongwen_certificate_expiry_seconds{unit=hub}");
    assert!(own > 29.0 * 86400.0 && own <= 30.0 * 86400.0, "{own}");
    let crl = before.value("gongwen_crl_next_update_seconds");
    assert!(crl > 29.0 * 86400.0 && crl <= 30.0 * 86400.0, "{crl}");

    let mut harbin = net.start_agent("harbin-gov", hub.addr);
    let mut daqing = RunningAgent::start(net.agent_config_with(
        "daqing-gov",
        hub.addr,
        "[metrics]\nlisten = \"127.0.0.1:0\"\n",
    ));
    harbin.wait_connected().await;
    daqing.wait_connected().await;
    let unit = daqing.metrics.expect("the agent serves metrics");
    let (status, text) = prom::get(unit, "/healthz").await;
    assert_eq!(status, 200, "{text}");
    assert!(text.starts_with("ok: connected to the hub at"), "{text}");
    let body = vec![7u8; 200_000];
    net.drop_file("harbin-gov", "daqing-gov", "一.bin", &body);
    net.drop_file("harbin-gov", "daqing-gov", "二.bin", &body);
    wait_inbox(&net.root("daqing-gov"), "harbin-gov", 2).await;
    wait_all_delivered(&net.root("harbin-gov"), 2).await;

    let after = prom::scrape(at).await;
    assert_eq!(after.value("gongwen_units_connected"), 2.0);
    assert_eq!(after.value("gongwen_units_known"), 2.0);
    assert_eq!(after.value("gongwen_documents_accepted_total"), 2.0);
    assert_eq!(after.value("gongwen_documents_delivered_total"), 2.0);
    assert_eq!(after.value("gongwen_documents_quarantined_total"), 0.0);
    assert_eq!(after.value("gongwen_receipts_total{kind=accepted}"), 2.0);
    assert_eq!(after.value("gongwen_receipts_total{kind=delivered}"), 2.0);
    assert_eq!(after.value("gongwen_upload_duration_seconds_count"), 2.0);
    assert_eq!(
        after.kind("gongwen_upload_duration_seconds_count"),
        "histogram"
    );
    assert_eq!(after.value("gongwen_delivery_duration_seconds_count"), 2.0);
    assert!(after.value("gongwen_store_commit_duration_seconds_count") >= 1.0);
    // Ciphertext is a little longer than the files.
    for series in ["gongwen_received_bytes_total", "gongwen_sent_bytes_total"] {
        let n = after.value(series);
        assert!((400_000.0..500_000.0).contains(&n), "{series} = {n}");
    }
    // The receiving unit's own view.
    let at_unit = prom::scrape(unit).await;
    assert_eq!(at_unit.value("gongwen_agent_connected"), 1.0);
    assert_eq!(at_unit.value("gongwen_agent_documents_received_total"), 2.0);
    assert_eq!(at_unit.value("gongwen_agent_inbox_unanswered"), 2.0);
    assert_eq!(at_unit.value("gongwen_agent_documents_sent_total"), 0.0);
    let own = at_unit.value("gongwen_agent_certificate_expiry_seconds");
    assert!(own > 29.0 * 86400.0, "{own}");
    let left = after.value("gongwen_certificate_expiry_seconds{unit=harbin-gov}");
    assert!(left > 29.0 * 86400.0 && left <= 30.0 * 86400.0, "{left}");
    // No document id is a label: label sets name units and kinds only.
    for series in after.samples.keys() {
        if let Some((_, labels)) = series.split_once('{') {
            assert!(
                labels
                    .split(',')
                    .all(|l| ["unit=", "kind=", "action=", "le="]
                        .iter()
                        .any(|k| l.starts_with(k))),
                "{series}"
            );
        }
    }

    // A CRL past its next update: the hub refuses everyone, and says so.
    net.let_crl_go_stale();
    let why = prom::wait_unhealthy(at).await;
    assert!(
        why.contains("revocation list went stale") && why.contains("gongwen-certs crl"),
        "{why}"
    );
    let stale = prom::scrape(at).await;
    assert!(stale.value("gongwen_crl_next_update_seconds") < 0.0);
    // The unit, cut off, says so too.
    let why = prom::wait_unhealthy(unit).await;
    assert!(why.contains("not connected to any hub"), "{why}");

    harbin.stop().await;
    daqing.stop().await;
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_fails_while_the_database_is_away_and_recovers_with_it() {
    if !prom::available() || !gongwen_tests::pg::available() {
        return;
    }
    let mut cluster = gongwen_tests::pg::Cluster::start();
    let net = Net::new();
    let config = net.hub_config_as(
        "hub",
        "127.0.0.1:0".parse().unwrap(),
        &format!(
            "[store]\npostgres = \"{}\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n",
            cluster.conn()
        ),
    );
    let hub = net
        .start_hub_config(config, gongwen_common::clock::system())
        .await;
    let at = hub.metrics.unwrap();
    assert_eq!(prom::get(at, "/healthz").await.0, 200);

    cluster.crash();
    let why = prom::wait_unhealthy(at).await;
    assert!(why.contains("the store cannot be read"), "{why}");
    // The counters still answer while the database is away.
    assert_eq!(
        prom::scrape(at)
            .await
            .value("gongwen_documents_accepted_total"),
        0.0
    );

    cluster.restart();
    prom::wait_healthy(at).await;
    hub.stop().await;
}
