//! Load from peers the hub has not authenticated yet: QUIC Initials with a
//! ClientHello and no certificate, sent and never followed up. They must
//! not lock real units out, disturb the connected ones, or grow the hub's
//! memory without bound.
//!
//! The hub runs as its own process (its memory is read from /proc); the
//! flood comes from 127.0.0.2, the units from 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use gongwen_common::Role;
use gongwen_hub::ops::control::{self, Request};
use gongwen_hub::state::registry::NodeRow;
use gongwen_tests::flood::{initials, rss_kib, send_paced};
use gongwen_tests::{HubProcess, Net, wait_inbox};

/// The probe's burst: 6,000 ClientHellos in 0.8 s.
const BURST: usize = 6000;
const BURST_PER_SECOND: u32 = 7500;
/// Then a steady flood above the ~410 a second that kept every
/// reconnecting unit out before, for as long as the test needs it.
const STEADY: usize = 5000;
const STEADY_PER_SECOND: u32 = 500;

async fn nodes(hub: &HubProcess) -> Vec<NodeRow> {
    let v = control::query(&hub.data_dir, &Request::Nodes)
        .await
        .unwrap();
    serde_json::from_value(v).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unfinished_handshakes_locks_no_unit_out_and_leaves_connected_ones_alone() {
    let net = Net::new();
    for id in ["prov-gov", "harbin-gov", "daqing-gov"] {
        net.issue(id, Role::Node);
    }
    let hub = HubProcess::start(&net, "127.0.0.1:0".parse().unwrap()).await;
    let prov = net.start_agent("prov-gov", hub.addr);
    let harbin = net.start_agent("harbin-gov", hub.addr);
    // daqing-gov has been connected and restarts during the flood.
    let daqing = net.start_agent("daqing-gov", hub.addr);
    hub.wait_units(3).await;
    daqing.stop().await;
    let before = nodes(&hub).await;
    let rss_before = rss_kib(hub.pid());

    // Made before the clock starts: making them costs the test, not the hub.
    let addr = hub.addr;
    let (burst, steady) = tokio::task::spawn_blocking(move || {
        let mut all = initials(BURST + STEADY, addr);
        let steady = all.split_off(BURST);
        (all, steady)
    })
    .await
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let from = "127.0.0.2:0".parse().unwrap();
    let burst = send_paced(burst, from, hub.addr, BURST_PER_SECOND, stop.clone());
    let burst_sent = tokio::task::spawn_blocking(move || burst.join().unwrap())
        .await
        .unwrap();
    let rss_after_burst = rss_kib(hub.pid());
    let steady = send_paced(steady, from, hub.addr, STEADY_PER_SECOND, stop.clone());

    // The restarting unit comes back while the flood goes on.
    let started = Instant::now();
    let mut daqing = net.start_agent("daqing-gov", hub.addr);
    daqing.wait_connected().await;
    let admitted_in = started.elapsed();
    // And documents still flow between the units that stayed connected.
    net.drop_file("prov-gov", "harbin-gov", "通知.txt", b"during the flood");
    wait_inbox(&net.root("harbin-gov"), "prov-gov", 1).await;
    let rss_during = rss_kib(hub.pid());
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let steady_sent = tokio::task::spawn_blocking(move || steady.join().unwrap())
        .await
        .unwrap();

    eprintln!(
        "flood: {burst_sent} Initials in a burst, then {steady_sent} at {STEADY_PER_SECOND}/s; \
         daqing-gov admitted {:.2} s after restarting; hub RSS {} KiB before, {} KiB after the burst, {} KiB at the end",
        admitted_in.as_secs_f64(),
        rss_before,
        rss_after_burst,
        rss_during
    );
    assert!(
        admitted_in < Duration::from_secs(5),
        "a restarting unit took {admitted_in:?} to be admitted during the flood"
    );
    // The units connected before the flood noticed nothing: same
    // connection since before.
    let after = nodes(&hub).await;
    for id in ["prov-gov", "harbin-gov"] {
        let was = before.iter().find(|n| n.id == id).unwrap();
        let is = after.iter().find(|n| n.id == id).unwrap();
        assert!(is.connected, "{id} was disconnected by the flood");
        assert_eq!(was.since, is.since, "{id} reconnected during the flood");
    }
    assert!(matches!(
        *prov.link.borrow(),
        gongwen_agent::LinkState::Connected { .. }
    ));
    assert!(matches!(
        *harbin.link.borrow(),
        gongwen_agent::LinkState::Connected { .. }
    ));
    let grew = rss_after_burst.max(rss_during).saturating_sub(rss_before);
    assert!(
        grew < 48 * 1024,
        "the hub's memory grew by {grew} KiB during the flood"
    );
    let log = std::fs::read_to_string(&hub.log).unwrap();
    assert!(
        log.contains("asked to prove their address (QUIC Retry)"),
        "the hub did not say it was under a handshake flood"
    );
    assert!(
        log.lines().count() < 200,
        "the flood made the hub log {} lines",
        log.lines().count()
    );
}
