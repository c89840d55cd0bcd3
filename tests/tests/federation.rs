//! Federation between domains, each with its own CA and hub, on loopback:
//! `national` accepts the provinces' links, `heilongjiang` and `jilin`
//! dial it. Trust is a statement each CA signs for its peer; each link is
//! judged by both ends on every connection and while it lasts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use gongwen_common::clock::{self, ManualClock};
use gongwen_common::federation::{Domain, FederationStatement};
use gongwen_common::suite::Suite;
use gongwen_tests::federation::{
    PeerEntry, federate, hub_config, row, start_hub, wait_linked, wait_peers,
};
use gongwen_tests::{Net, run_cli};
use time::OffsetDateTime;

/// national trusts both provinces; each province trusts national.
fn three_domains() -> (Net, Net, Net) {
    let (national, hlj, jilin) = (Net::new(), Net::new(), Net::new());
    federate(&national, "heilongjiang", &hlj);
    federate(&national, "jilin", &jilin);
    federate(&hlj, "national", &national);
    federate(&jilin, "national", &national);
    (national, hlj, jilin)
}

fn national_peers() -> Vec<PeerEntry> {
    vec![
        PeerEntry::accept("heilongjiang"),
        PeerEntry::accept("jilin"),
    ]
}

fn problem(v: &serde_json::Value, domain: &str) -> String {
    row(v, domain)["last_problem"]["what"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provinces_link_to_national_and_each_holds_the_others_revocation_list() {
    let (national, hlj, jilin) = three_domains();
    let nat = start_hub(&national, "national", &national_peers(), clock::system()).await;
    let h = start_hub(
        &hlj,
        "heilongjiang",
        &[PeerEntry::dial("national", nat.addr, &["jilin"])],
        clock::system(),
    )
    .await;
    let j = start_hub(
        &jilin,
        "jilin",
        &[PeerEntry::dial("national", nat.addr, &["heilongjiang"])],
        clock::system(),
    )
    .await;
    let at_national = wait_linked(&nat, &["heilongjiang", "jilin"]).await;
    for d in ["heilongjiang", "jilin"] {
        let r = row(&at_national, d);
        assert_eq!(r["links"][0]["direction"], "accepted", "{r:#}");
        assert_eq!(r["crl_stale"], false, "{r:#}");
        assert!(r["crl_issued"].is_string(), "{r:#}");
        assert!(r["dial"].as_array().unwrap().is_empty());
    }
    let at_hlj = wait_linked(&h, &["national"]).await;
    let r = row(&at_hlj, "national");
    assert_eq!(r["links"][0]["direction"], "dialed");
    assert_eq!(r["routes"], serde_json::json!(["jilin"]));
    assert_eq!(r["crl_stale"], false);
    wait_linked(&j, &["national"]).await;
    // The CRL each side holds is the peer CA's own, kept across restarts.
    let kept = std::fs::read(nat.data_dir.join("federation/jilin.crl")).unwrap();
    let theirs = gongwen_common::pki::Crl::load(
        &jilin.path().join("ca/crl.pem"),
        &gongwen_common::pki::load_certs(&jilin.path().join("ca/ca.crt")).unwrap()[0],
    )
    .unwrap();
    assert_eq!(kept, theirs.der.to_vec());

    // The administrator's table.
    let (ok, out) = run_cli("gongwen-hub", &["peers"], &national.path().join("hub.toml"));
    assert!(ok, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("DOMAIN"), "{out}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("heilongjiang") && l.contains(" yes ")),
        "{out}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("jilin") && l.contains(" yes ")),
        "{out}"
    );
    // A unit revoked in jilin: the new list crosses to national.
    jilin.issue("changchun-gov", gongwen_common::Role::Node);
    jilin.revoke("changchun-gov");
    let fresh = gongwen_common::pki::Crl::load(
        &jilin.path().join("ca/crl.pem"),
        &gongwen_common::pki::load_certs(&jilin.path().join("ca/ca.crt")).unwrap()[0],
    )
    .unwrap();
    gongwen_tests::wait_until("jilin's new revocation list at national", || {
        let kept = std::fs::read(nat.data_dir.join("federation/jilin.crl")).ok()?;
        (kept == fresh.der.to_vec()).then_some(())
    })
    .await;
    j.stop().await;
    h.stop().await;
    nat.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_hub_is_refused_unless_a_statement_names_its_ca_for_the_domain_it_claims() {
    let (national, hlj, jilin) = three_domains();
    // A hub whose CA no statement at national names, claiming jilin.
    let rogue = Net::new();
    federate(&rogue, "national", &national);
    let nat = start_hub(&national, "national", &national_peers(), clock::system()).await;
    let r = start_hub(
        &rogue,
        "jilin",
        &[PeerEntry::dial("national", nat.addr, &[])],
        clock::system(),
    )
    .await;
    let at_rogue = wait_peers(&r, "the rogue's link refused", |v| {
        !problem(v, "national").is_empty()
    })
    .await;
    assert_eq!(row(&at_rogue, "national")["connected"], false);
    // Refused in the handshake: its certificate chains to no CA national
    // trusts.
    assert!(
        problem(&at_rogue, "national").contains("handshake"),
        "{at_rogue:#}"
    );
    // heilongjiang's real hub claiming to be jilin: its certificate is from
    // a CA national trusts, but not the one named for jilin.
    let h = start_hub(
        &hlj,
        "jilin",
        &[PeerEntry::dial("national", nat.addr, &[])],
        clock::system(),
    )
    .await;
    let at_h = wait_peers(&h, "the false claim refused", |v| {
        problem(v, "national").contains("refused this hub")
    })
    .await;
    assert!(
        problem(&at_h, "national")
            .contains("not issued by the CA the federation statement for jilin names"),
        "{at_h:#}"
    );
    let at_national = wait_peers(&nat, "the refusal recorded at national", |v| {
        problem(v, "jilin").contains("refused its link")
    })
    .await;
    assert_eq!(row(&at_national, "jilin")["connected"], false);
    assert_eq!(row(&at_national, "heilongjiang")["connected"], false);
    // A real jilin links at once beside them.
    let j = start_hub(
        &jilin,
        "jilin",
        &[PeerEntry::dial("national", nat.addr, &[])],
        clock::system(),
    )
    .await;
    wait_linked(&nat, &["jilin"]).await;
    j.stop().await;
    h.stop().await;
    r.stop().await;
    nat.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_peer_hub_is_cut_off_and_a_stale_peer_list_stops_only_that_domain() {
    let (national, hlj, jilin) = three_domains();
    // jilin's list goes stale an hour from now, heilongjiang's in 30 days.
    let now = OffsetDateTime::now_utc();
    jilin
        .ca()
        .write_crl_until(now, now + time::Duration::hours(1))
        .unwrap();
    let clock = Arc::new(ManualClock::new(now));
    let nat = start_hub(&national, "national", &national_peers(), clock.clone()).await;
    let h = start_hub(
        &hlj,
        "heilongjiang",
        &[PeerEntry::dial("national", nat.addr, &[])],
        clock::system(),
    )
    .await;
    let j = start_hub(
        &jilin,
        "jilin",
        &[PeerEntry::dial("national", nat.addr, &[])],
        clock::system(),
    )
    .await;
    wait_linked(&nat, &["heilongjiang", "jilin"]).await;
    // Two hours on at national: jilin's list is stale there.
    clock.advance(std::time::Duration::from_secs(2 * 3600));
    let v = wait_peers(&nat, "jilin cut off for its stale list", |v| {
        row(v, "jilin")["connected"] == false && problem(v, "jilin").contains("went stale")
    })
    .await;
    assert_eq!(row(&v, "jilin")["crl_stale"], true);
    // heilongjiang is not touched.
    assert_eq!(row(&v, "heilongjiang")["connected"], true, "{v:#}");
    let at_j = wait_peers(&j, "jilin told why", |v| {
        problem(v, "national").contains("went stale")
    })
    .await;
    assert_eq!(row(&at_j, "national")["connected"], false);
    clock.set(now + time::Duration::seconds(1));

    // heilongjiang's hub certificate revoked: its list crosses, and national
    // cuts the link it carries and refuses it after.
    hlj.revoke("hub");
    let v = wait_peers(&nat, "heilongjiang's revoked hub cut off", |v| {
        row(v, "heilongjiang")["connected"] == false
            && problem(v, "heilongjiang").contains("revoked")
    })
    .await;
    assert!(problem(&v, "heilongjiang").contains("revoked"), "{v:#}");
    wait_peers(&h, "heilongjiang told why", |v| {
        problem(v, "national").contains("revoked")
    })
    .await;
    j.stop().await;
    h.stop().await;
    nat.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_ends_of_a_link_must_use_the_same_suite() {
    let standard = Net::for_suite(Suite::Standard);
    let gm = Net::for_suite(Suite::Gm);
    // The CA tool refuses to make the statement.
    let e = standard
        .ca()
        .federate(
            Domain::parse("national").unwrap(),
            gm.ca().cert_pem().as_bytes(),
            OffsetDateTime::now_utc(),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("same suite"), "{e}");
    // A statement made by hand all the same: the hub will not start on it.
    let key = gongwen_common::pki::load_private_key(&standard.path().join("ca/ca.key")).unwrap();
    let our_ca = standard.ca().cert_der().to_vec();
    let gm_ca = gm.ca().cert_der().to_vec();
    let bytes = FederationStatement {
        issued_ms: 0,
        domain: Domain::parse("national").unwrap(),
        peer_ca: gm_ca,
    }
    .sign(key.secret_der(), &our_ca)
    .unwrap();
    std::fs::create_dir_all(standard.path().join("federation")).unwrap();
    std::fs::write(standard.path().join("federation/national.fed"), bytes).unwrap();
    let config = hub_config(
        &standard,
        "heilongjiang",
        "127.0.0.1:0".parse().unwrap(),
        &[PeerEntry::accept("national")],
    );
    let e = gongwen_hub::Hub::bind(config)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("same suite"), "{e}");
    // And `check` says so.
    let (ok, out) = run_cli("gongwen-hub", &["check"], &standard.path().join("hub.toml"));
    assert!(!ok, "{out}");
    assert!(out.contains("same suite"), "{out}");
}
