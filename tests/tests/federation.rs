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
    PeerEntry, agent, enroll, enroll_in_groups, federate, hub_config, peers, row, start_hub,
    wait_hub_status, wait_linked, wait_peers,
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

/// The statements are read again while the hub runs. national starts
/// with a statement for heilongjiang that names another CA (say, the one
/// heilongjiang had before it renewed): heilongjiang is refused. The
/// administrator writes the right statement in its place: heilongjiang
/// links, with no restart. The wrong one put back: the live link is cut
/// and heilongjiang refused again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_replaced_while_the_hub_runs_is_taken_at_once() {
    let (national, hlj, _jilin) = three_domains();
    let old_ca = Net::new();
    federate(&national, "heilongjiang", &old_ca);
    let nat = start_hub(&national, "national", &national_peers(), clock::system()).await;
    let h = start_hub(
        &hlj,
        "heilongjiang",
        &[PeerEntry::dial("national", nat.addr, &[])],
        clock::system(),
    )
    .await;
    let refused = wait_peers(&h, "heilongjiang refused", |v| {
        !problem(v, "national").is_empty()
    })
    .await;
    assert_eq!(row(&refused, "national")["connected"], false, "{refused:#}");
    assert!(
        problem(&refused, "national").contains("handshake"),
        "{refused:#}"
    );
    // The right statement, written over the old one.
    federate(&national, "heilongjiang", &hlj);
    wait_linked(&nat, &["heilongjiang"]).await;
    wait_linked(&h, &["national"]).await;
    // And the wrong one again: the link is cut, and stays cut.
    federate(&national, "heilongjiang", &old_ca);
    wait_peers(&nat, "the link cut", |v| {
        row(v, "heilongjiang")["connected"] == false
    })
    .await;
    // Dialled again, and refused in the handshake as at first.
    let again = wait_peers(&h, "heilongjiang refused again", |v| {
        row(v, "national")["connected"] == false && problem(v, "national").contains("handshake")
    })
    .await;
    assert_eq!(row(&again, "national")["connected"], false, "{again:#}");
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
    // Refused in the handshake: its certificate chains to no CA national
    // trusts. (Waited for by that reason: on a loaded machine a first
    // attempt may time out before it is refused.)
    let at_rogue = wait_peers(&r, "the rogue's link refused in the handshake", |v| {
        problem(v, "national").contains("handshake")
    })
    .await;
    assert_eq!(row(&at_rogue, "national")["connected"], false);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_domain_lists_the_units_of_the_others_through_national_with_their_names() {
    let (national, hlj, jilin) = three_domains();
    enroll(&hlj, &[("harbin-gov", "哈尔滨市人民政府")]);
    enroll(
        &jilin,
        &[
            ("changchun-gov", "长春市人民政府"),
            ("jilin-city", "吉林市人民政府"),
        ],
    );
    enroll(&national, &[("gov-office", "国务院办公厅")]);
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
    // national holds each province's directory; each province holds
    // national's and, through national, the other's, trusted by the chain
    // national's CA signed.
    wait_peers(&nat, "both provinces' directories at national", |v| {
        row(v, "heilongjiang")["units"] == 1 && row(v, "jilin")["units"] == 2
    })
    .await;
    let at_h = wait_peers(&h, "jilin's directory at heilongjiang", |v| {
        row(v, "national")["units"] == 1
            && v.as_array().unwrap().iter().any(|p| p["domain"] == "jilin")
            && row(v, "jilin")["units"] == 2
            && row(v, "jilin")["crl_issued"].is_string()
    })
    .await;
    assert_eq!(row(&at_h, "jilin")["via"], "national", "{at_h:#}");
    assert_eq!(row(&at_h, "jilin")["connected"], true);
    wait_peers(&j, "heilongjiang's directory at jilin", |v| {
        v.as_array()
            .unwrap()
            .iter()
            .any(|p| p["domain"] == "heilongjiang")
            && row(v, "heilongjiang")["units"] == 1
    })
    .await;

    // A unit of heilongjiang sees them in its outbox, with their names.
    hlj.issue("daqing-gov", gongwen_common::Role::Node);
    let agent = gongwen_tests::RunningAgent::start(hlj.agent_config("daqing-gov", h.addr));
    let outbox = hlj.root("daqing-gov").join("outbox");
    let list = gongwen_tests::wait_until("the remote units in 单位名录.txt", || {
        let text = std::fs::read_to_string(outbox.join("单位名录.txt")).ok()?;
        (text.contains("changchun-gov@jilin") && text.contains("gov-office@national"))
            .then_some(text)
    })
    .await;
    assert!(
        list.contains("changchun-gov@jilin\t长春市人民政府"),
        "{list}"
    );
    assert!(list.contains("jilin-city@jilin\t吉林市人民政府"), "{list}");
    assert!(list.contains("gov-office@national\t国务院办公厅"), "{list}");
    // Its own domain's units stay bare ids.
    assert!(list.contains("harbin-gov\t哈尔滨市人民政府"), "{list}");
    assert!(!list.contains("@heilongjiang"), "{list}");
    assert!(outbox.join("changchun-gov@jilin").is_dir());

    // Kept across a restart: heilongjiang knows jilin before national
    // answers again.
    agent.stop().await;
    h.stop().await;
    nat.stop().await;
    let h = start_hub(
        &hlj,
        "heilongjiang",
        &[PeerEntry::dial(
            "national",
            "127.0.0.1:9".parse().unwrap(),
            &["jilin"],
        )],
        clock::system(),
    )
    .await;
    let v = gongwen_tests::federation::peers(&h).await;
    assert_eq!(row(&v, "jilin")["units"], 2, "{v:#}");
    assert_eq!(row(&v, "jilin")["connected"], false);
    h.stop().await;
    j.stop().await;
}

/// heilongjiang, national and jilin with a unit each, linked and holding
/// each other's directories.
async fn linked_with_units(
    national: &Net,
    hlj: &Net,
    jilin: &Net,
) -> (
    gongwen_tests::RunningHub,
    gongwen_tests::RunningHub,
    gongwen_tests::RunningHub,
) {
    enroll(hlj, &[("harbin-gov", "哈尔滨市人民政府")]);
    enroll(jilin, &[("changchun-gov", "长春市人民政府")]);
    enroll(national, &[("gov-office", "国务院办公厅")]);
    let nat = start_hub(national, "national", &national_peers(), clock::system()).await;
    let h = start_hub(
        hlj,
        "heilongjiang",
        &[PeerEntry::dial("national", nat.addr, &["jilin"])],
        clock::system(),
    )
    .await;
    let j = start_hub(
        jilin,
        "jilin",
        &[PeerEntry::dial("national", nat.addr, &["heilongjiang"])],
        clock::system(),
    )
    .await;
    for (hub, other) in [(&h, "jilin"), (&j, "heilongjiang")] {
        wait_peers(hub, "the other province known through national", |v| {
            v.as_array().unwrap().iter().any(|p| p["domain"] == other)
                && row(v, other)["units"] == 1
                && row(v, other)["crl_issued"].is_string()
        })
        .await;
    }
    (nat, h, j)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_crosses_two_hubs_sealed_and_its_receipts_come_back_signed_by_the_recipient() {
    let (national, hlj, jilin) = three_domains();
    let (nat, h, j) = linked_with_units(&national, &hlj, &jilin).await;
    let mut harbin = agent(&hlj, "harbin-gov", h.addr);
    let mut changchun = agent(&jilin, "changchun-gov", j.addr);
    harbin.wait_connected().await;
    changchun.wait_connected().await;
    let outbox = hlj.root("harbin-gov").join("outbox");
    gongwen_tests::wait_until("the outbox folder of changchun-gov@jilin", || {
        outbox.join("changchun-gov@jilin").is_dir().then_some(())
    })
    .await;
    let body = "关于两省协同办理事项的函\n".repeat(200);
    hlj.drop_file(
        "harbin-gov",
        "changchun-gov@jilin",
        "关于两省协同办理事项的函.txt",
        body.as_bytes(),
    );
    // At jilin, from harbin-gov@heilongjiang, the bytes the sender dropped.
    let docs =
        gongwen_tests::wait_inbox(&jilin.root("changchun-gov"), "harbin-gov@heilongjiang", 1).await;
    let got = std::fs::read(docs[0].join("关于两省协同办理事项的函.txt")).unwrap();
    assert_eq!(got, body.as_bytes());
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(docs[0].join("metadata.json")).unwrap()).unwrap();
    assert_eq!(meta["sender"], "harbin-gov@heilongjiang", "{meta:#}");
    // The delivered receipt crossed back to the sender, as jilin's unit
    // signed it.
    let status = gongwen_tests::wait_status(&hlj.root("harbin-gov"), "delivered at jilin", |s| {
        s.iter().any(|d| {
            d.recipients.iter().any(|r| {
                r.recipient == "changchun-gov@jilin"
                    && r.receipts
                        .contains(&gongwen_common::receipt::ReceiptKind::Delivered)
            })
        })
    })
    .await;
    let doc: gongwen_common::DocId = status[0].doc_id.parse().unwrap();
    // A clerk at jilin signs for it (签收): the signed receipt crosses
    // back with the name.
    changchun.wait_received(doc).await;
    gongwen_tests::ask_agent(
        &jilin.root("changchun-gov"),
        &gongwen_agent::front::control::Request::Ack {
            doc,
            by: "李四".into(),
        },
    )
    .await
    .unwrap();
    gongwen_tests::wait_status(&hlj.root("harbin-gov"), "signed for at jilin", |s| {
        s.iter().any(|d| {
            d.recipients.iter().any(|r| {
                r.recipient == "changchun-gov@jilin" && r.acknowledged_by.as_deref() == Some("李四")
            })
        })
    })
    .await;
    // The sender's evidence: the recipient's signatures checked by openssl
    // back to heilongjiang's CA through the chain national vouches with;
    // one changed byte of jilin's CA and it fails.
    for (who, root) in [
        ("harbin-gov", hlj.root("harbin-gov")),
        ("changchun-gov", jilin.root("changchun-gov")),
    ] {
        let out = root.parent().unwrap().join(format!("evidence-{who}"));
        gongwen_tests::ask_agent(
            &root,
            &gongwen_agent::front::control::Request::Evidence {
                doc,
                out: out.clone(),
            },
        )
        .await
        .unwrap();
        let run = std::process::Command::new("sh")
            .arg(out.join("verify.sh"))
            .output()
            .expect("sh and openssl are needed for this test");
        let text = String::from_utf8_lossy(&run.stdout).into_owned();
        assert!(run.status.success(), "{who}: {text}");
        assert!(text.contains("evidence verified"), "{who}: {text}");
        assert!(text.contains("(issued by the CA of "), "{who}: {text}");
        if who == "harbin-gov" {
            assert!(text.contains("domain CA    jilin"), "{text}");
            assert!(text.contains("file "), "{text}");
        }
        let other = std::fs::read_dir(&out)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with("-1.signed"))
            .unwrap();
        let mut bytes = std::fs::read(&other).unwrap();
        let n = bytes.len() - 10;
        bytes[n] ^= 1;
        std::fs::write(&other, bytes).unwrap();
        let run = std::process::Command::new("sh")
            .arg(out.join("verify.sh"))
            .output()
            .unwrap();
        assert!(
            !run.status.success(),
            "{who}: a changed chain still verified"
        );
    }
    // Every hub on the way shows the copy signed for, by whom.
    for hub in [&h, &nat] {
        let v = gongwen_tests::ask_hub(
            &hub.data_dir,
            &gongwen_hub::ops::control::Request::Status { doc },
        )
        .await;
        let text = v.to_string();
        assert!(text.contains("changchun-gov@jilin"), "{v:#}");
        assert!(
            text.contains("acknowledged") && text.contains("李四"),
            "{v:#}"
        );
        let receipts = v["recipients"][0]["receipts"].to_string();
        assert!(
            receipts.contains("delivered") && receipts.contains("acknowledged"),
            "{v:#}"
        );
    }
    // The sender's hub's report counts the unit elsewhere like its own.
    let report = gongwen_tests::ask_hub(
        &h.data_dir,
        &gongwen_hub::ops::control::Request::Report {
            since: None,
            until: None,
        },
    )
    .await;
    assert!(
        report.to_string().contains("changchun-gov@jilin"),
        "{report:#}"
    );
    harbin.stop().await;
    changchun.stop().await;
    j.stop().await;
    h.stop().await;
    nat.stop().await;
}

/// heilongjiang's hub (its real certificate) turns hostile: it hands
/// national a document signed by a unit of jilin, a domain national does
/// not reach through heilongjiang. National refuses it and keeps nothing;
/// the same document from jilin's own link is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_injects_another_domains_document_is_refused() {
    let (national, hlj, jilin) = three_domains();
    let (nat, h, j) = linked_with_units(&national, &hlj, &jilin).await;
    // A document genuinely signed by changchun-gov of jilin, for
    // gov-office@national, made through jilin's hub.
    let changchun = gongwen_tests::raw::RawAgent::connect(
        &jilin.path().join("changchun-gov"),
        "changchun-gov",
        j.addr,
    )
    .await;
    let doc = changchun
        .seal(
            gongwen_common::DocId::generate(),
            &["gov-office@national"],
            "关于某事的函.txt",
            "内容".as_bytes(),
        )
        .await;
    // heilongjiang's hub stops; a hostile stand-in with its certificate
    // links in its place.
    h.stop().await;
    let hostile =
        gongwen_tests::federation::RawPeer::connect(&hlj, "heilongjiang", &national, nat.addr)
            .await
            .unwrap();
    let answer = hostile.relay(&doc).await;
    match &answer {
        gongwen_common::wire::Message::Error { message, .. } => {
            assert!(
                message.contains("not issued by the CA of heilongjiang"),
                "{message}"
            )
        }
        other => panic!("national took it: {other:?}"),
    }
    let held = gongwen_hub::ops::control::query(
        &nat.data_dir,
        &gongwen_hub::ops::control::Request::Status { doc: doc.doc_id },
    )
    .await;
    assert!(held.is_err(), "national holds it: {held:?}");
    // The same bytes from jilin's own link are taken.
    let honest = changchun.upload(&doc).await;
    assert!(
        matches!(honest, gongwen_common::wire::Message::Accepted { .. }),
        "{honest:?}"
    );
    // Nor may the stand-in ask what became of it (the cascade a peer may
    // ask only of documents that came from its side), nor anything else.
    let mut held = false;
    for _ in 0..1000 {
        held = gongwen_hub::ops::control::query(
            &nat.data_dir,
            &gongwen_hub::ops::control::Request::Status { doc: doc.doc_id },
        )
        .await
        .is_ok();
        if held {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(held, "national never took the document from jilin");
    let ask =
        |query: gongwen_common::supervision::Query| gongwen_common::wire::Message::Supervise {
            query: serde_json::to_vec(&query).unwrap(),
        };
    for (query, refusal) in [
        (
            gongwen_common::supervision::Query::Cascade {
                doc: doc.doc_id,
                hops: 4,
            },
            "holds no document",
        ),
        (
            gongwen_common::supervision::Query::Status { doc: doc.doc_id },
            "only for a document's cascade",
        ),
    ] {
        match hostile.ask(&ask(query)).await {
            Ok(gongwen_common::wire::Message::Error { message, .. }) => {
                assert!(message.contains(refusal), "{message}")
            }
            other => panic!("national answered: {other:?}"),
        }
    }
    j.stop().await;
    nat.stop().await;
}

/// national is down for a while: what heilongjiang's units send to jilin
/// waits at heilongjiang (its `peers` says how much), and flows when
/// national is back, the most urgent first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_national_is_down_documents_wait_and_then_flow_most_urgent_first() {
    let (national, hlj, jilin) = three_domains();
    let (nat, h, j) = linked_with_units(&national, &hlj, &jilin).await;
    let nat_addr = nat.addr;
    let mut harbin = agent(&hlj, "harbin-gov", h.addr);
    let mut changchun = agent(&jilin, "changchun-gov", j.addr);
    harbin.wait_connected().await;
    changchun.wait_connected().await;
    let outbox = hlj.root("harbin-gov").join("outbox");
    gongwen_tests::wait_until("the outbox folder of changchun-gov@jilin", || {
        outbox.join("changchun-gov@jilin").is_dir().then_some(())
    })
    .await;
    nat.stop().await;
    wait_peers(&h, "national down", |v| {
        row(v, "national")["connected"] == false
    })
    .await;
    // Dropped in the order 平件, 加急, 特急.
    for (title, urgency) in [
        ("平件之函", "normal"),
        ("加急之函", "urgent"),
        ("特急之函", "extra-urgent"),
    ] {
        hlj.sidecar(
            "harbin-gov",
            "changchun-gov@jilin",
            &format!("{title}.txt"),
            &format!("title = \"{title}\"\nurgency = \"{urgency}\"\n"),
        );
        hlj.drop_file(
            "harbin-gov",
            "changchun-gov@jilin",
            &format!("{title}.txt"),
            title.as_bytes(),
        );
        // Each accepted at heilongjiang before the next is dropped.
        let n = match urgency {
            "normal" => 1,
            "urgent" => 2,
            _ => 3,
        };
        gongwen_tests::wait_status(&hlj.root("harbin-gov"), "accepted at heilongjiang", |s| {
            s.iter().filter(|d| d.stage == "sent").count() >= n
        })
        .await;
    }
    let v = wait_peers(&h, "three documents queued for jilin", |v| {
        row(v, "jilin")["queued"] == 3
    })
    .await;
    assert_eq!(row(&v, "jilin")["via"], "national");
    assert!(
        gongwen_tests::inbox_docs(&jilin.root("changchun-gov"), "harbin-gov@heilongjiang")
            .is_empty()
    );

    // national back, on the same address.
    let config = hub_config(&national, "national", nat_addr, &national_peers());
    let nat = national.start_hub_config(config, clock::system()).await;
    let docs =
        gongwen_tests::wait_inbox(&jilin.root("changchun-gov"), "harbin-gov@heilongjiang", 3).await;
    assert_eq!(docs.len(), 3);
    wait_peers(&h, "the queue emptied", |v| row(v, "jilin")["queued"] == 0).await;
    // In the order of their urgency, whatever the order they were sent in.
    let mut arrived: Vec<(i64, String)> = Vec::new();
    for d in &docs {
        let doc: gongwen_common::DocId = d.file_name().unwrap().to_str().unwrap().parse().unwrap();
        changchun.wait_received(doc).await;
        let (rec, _) = changchun.parts.store().received(doc).unwrap().unwrap();
        arrived.push((rec.received_ms, rec.title.clone()));
    }
    arrived.sort();
    let order: Vec<&str> = arrived.iter().map(|(_, t)| t.as_str()).collect();
    let rank = |t: &str| {
        ["特急之函", "加急之函", "平件之函"]
            .iter()
            .position(|x| *x == t)
    };
    let ranks: Vec<_> = order.iter().map(|t| rank(t)).collect();
    let mut sorted = ranks.clone();
    sorted.sort();
    assert_eq!(ranks, sorted, "arrived in the order {order:?}");
    harbin.stop().await;
    changchun.stop().await;
    j.stop().await;
    h.stop().await;
    nat.stop().await;
}

/// jilin's hub takes documents of at most 1 MiB; heilongjiang's and
/// national's take more. A 2 MiB 特急 document for changchun-gov@jilin is
/// accepted at heilongjiang and carried by national, then refused for good
/// by jilin: national and heilongjiang mark the copy undeliverable with
/// jilin's reason and stop trying it, and the 平件 queued behind it still
/// arrives (it holds up nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_the_last_hub_refuses_for_good_is_marked_undeliverable_back_to_the_sender() {
    let (national, hlj, jilin) = three_domains();
    enroll(&hlj, &[("harbin-gov", "哈尔滨市人民政府")]);
    enroll(&jilin, &[("changchun-gov", "长春市人民政府")]);
    enroll(&national, &[("gov-office", "国务院办公厅")]);
    let nat = start_hub(&national, "national", &national_peers(), clock::system()).await;
    let nat_addr = nat.addr;
    let h = start_hub(
        &hlj,
        "heilongjiang",
        &[PeerEntry::dial("national", nat_addr, &["jilin"])],
        clock::system(),
    )
    .await;
    let mut config = hub_config(
        &jilin,
        "jilin",
        "127.0.0.1:0".parse().unwrap(),
        &[PeerEntry::dial("national", nat_addr, &["heilongjiang"])],
    );
    config.max_document_size = 1 << 20;
    let j = jilin.start_hub_config(config, clock::system()).await;
    wait_peers(&h, "jilin's units known", |v| {
        v.as_array().unwrap().iter().any(|p| p["domain"] == "jilin")
            && row(v, "jilin")["units"] == 1
    })
    .await;
    gongwen_agent::unit::accounts::Accounts::edit(
        &hlj.root("harbin-gov").join("state/accounts.json"),
        |a| {
            a.add_user(
                "wang",
                "王五",
                gongwen_agent::unit::accounts::UserRole::Clerk,
                gongwen_tests::web::PASSWORD,
                0,
            )
        },
    )
    .unwrap();
    let mut harbin = gongwen_tests::federation::agent_with(
        &hlj,
        "harbin-gov",
        h.addr,
        "[console]\nlisten = \"127.0.0.1:0\"",
    );
    let mut changchun = agent(&jilin, "changchun-gov", j.addr);
    harbin.wait_connected().await;
    changchun.wait_connected().await;
    let outbox = hlj.root("harbin-gov").join("outbox");
    gongwen_tests::wait_until("the outbox folder of changchun-gov@jilin", || {
        outbox.join("changchun-gov@jilin").is_dir().then_some(())
    })
    .await;
    // Both wait at heilongjiang while national is down, the large one
    // first in urgency order.
    nat.stop().await;
    wait_peers(&h, "national down", |v| {
        row(v, "national")["connected"] == false
    })
    .await;
    let big: Vec<u8> = (0..2u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for (title, urgency, body) in [
        ("特急大件", "extra-urgent", big.clone()),
        ("平件之函", "normal", "平件".as_bytes().to_vec()),
    ] {
        hlj.sidecar(
            "harbin-gov",
            "changchun-gov@jilin",
            &format!("{title}.bin"),
            &format!("title = \"{title}\"\nurgency = \"{urgency}\"\n"),
        );
        hlj.drop_file(
            "harbin-gov",
            "changchun-gov@jilin",
            &format!("{title}.bin"),
            &body,
        );
    }
    let sent = gongwen_tests::wait_status(
        &hlj.root("harbin-gov"),
        "both accepted at heilongjiang",
        |s| s.iter().filter(|d| d.stage == "sent").count() == 2,
    )
    .await;
    let big_id: gongwen_common::DocId = sent
        .iter()
        .find(|d| d.title == "特急大件")
        .unwrap()
        .doc_id
        .parse()
        .unwrap();
    wait_peers(&h, "two queued for jilin", |v| {
        row(v, "jilin")["queued"] == 2
    })
    .await;
    let config = hub_config(&national, "national", nat_addr, &national_peers());
    let nat = national.start_hub_config(config, clock::system()).await;
    // The 平件 arrives; the large one never does.
    let docs =
        gongwen_tests::wait_inbox(&jilin.root("changchun-gov"), "harbin-gov@heilongjiang", 1).await;
    assert_eq!(docs.len(), 1);
    assert!(docs[0].join("平件之函.bin").exists(), "{docs:?}");
    // Each hub back to the sender marks the copy, with jilin's reason.
    let undeliverable = |v: &serde_json::Value| {
        v["recipients"].as_array().into_iter().flatten().any(|r| {
            r["recipient"] == "changchun-gov@jilin"
                && r["state"] == "quarantined"
                && r["quarantine_reason"].as_str().is_some_and(|t| {
                    t.contains("无法送达") && t.contains("this hub takes at most 1048576")
                })
        })
    };
    wait_hub_status(&nat, big_id, "undeliverable at national", undeliverable).await;
    wait_hub_status(&h, big_id, "undeliverable at heilongjiang", undeliverable).await;
    // The sending clerk's 签收情况 says so, in the console.
    let mut web = gongwen_tests::web::Browser::new(harbin.console.unwrap());
    web.log_in("wang", gongwen_tests::web::PASSWORD).await;
    let page = web.get(&format!("/sent/{big_id}")).await.text();
    assert!(
        page.contains("无法送达") && page.contains("长春市人民政府"),
        "{page}"
    );
    // Nothing of it waits anywhere, so nothing tries it again.
    wait_peers(&h, "heilongjiang's queue empty", |v| {
        row(v, "jilin")["queued"] == 0
    })
    .await;
    wait_peers(&nat, "national's queue empty", |v| {
        row(v, "jilin")["queued"] == 0
    })
    .await;
    assert_eq!(
        gongwen_tests::inbox_docs(&jilin.root("changchun-gov"), "harbin-gov@heilongjiang").len(),
        1
    );
    harbin.stop().await;
    changchun.stop().await;
    j.stop().await;
    h.stop().await;
    nat.stop().await;
}

/// A flood from a unit elsewhere is bound like one from a unit here: with
/// `queued_per_sender = 3` at national, changchun-gov@jilin's five
/// documents for gov-office (offline) leave three waiting at national and
/// two at jilin, whose hub is told to retry later; meanwhile what else
/// jilin sends through national goes on. Once gov-office takes its
/// documents, the other two follow. (gov-office's agent, connecting after
/// they arrived, is handed jilin's trust before any of them: before, it
/// quarantined them, unable to judge their sender.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_a_unit_elsewhere_is_bound_at_the_hub_of_the_offline_recipient() {
    let (national, hlj, jilin) = three_domains();
    enroll(&hlj, &[("harbin-gov", "哈尔滨市人民政府")]);
    enroll(&jilin, &[("changchun-gov", "长春市人民政府")]);
    enroll(&national, &[("gov-office", "国务院办公厅")]);
    let mut config = hub_config(
        &national,
        "national",
        "127.0.0.1:0".parse().unwrap(),
        &national_peers(),
    );
    config.max_queued_per_sender = 3;
    let nat = national.start_hub_config(config, clock::system()).await;
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
    wait_peers(&j, "the others' units known", |v| {
        v.as_array()
            .unwrap()
            .iter()
            .any(|p| p["domain"] == "heilongjiang")
            && row(v, "heilongjiang")["units"] == 1
            && row(v, "national")["units"] == 1
    })
    .await;
    let mut changchun = agent(&jilin, "changchun-gov", j.addr);
    let mut harbin = agent(&hlj, "harbin-gov", h.addr);
    changchun.wait_connected().await;
    harbin.wait_connected().await;
    let outbox = jilin.root("changchun-gov").join("outbox");
    gongwen_tests::wait_until("the outbox folders of the units elsewhere", || {
        (outbox.join("gov-office@national").is_dir()
            && outbox.join("harbin-gov@heilongjiang").is_dir())
        .then_some(())
    })
    .await;
    for i in 0..5 {
        jilin.drop_file(
            "changchun-gov",
            "gov-office@national",
            &format!("函{i}.txt"),
            format!("第{i}件").as_bytes(),
        );
    }
    wait_peers(&j, "two left waiting at jilin", |v| {
        row(v, "national")["queued"] == 2
    })
    .await;
    // Three wait at national, and no more.
    let held = gongwen_tests::wait_status(
        &jilin.root("changchun-gov"),
        "five accepted at jilin",
        |s| s.iter().filter(|d| d.stage == "sent").count() == 5,
    )
    .await;
    let mut at_national = 0;
    for d in &held {
        let doc: gongwen_common::DocId = d.doc_id.parse().unwrap();
        if gongwen_hub::ops::control::query(
            &nat.data_dir,
            &gongwen_hub::ops::control::Request::Status { doc },
        )
        .await
        .is_ok()
        {
            at_national += 1;
        }
    }
    assert_eq!(at_national, 3);
    // What else jilin sends through national is not held up.
    jilin.drop_file(
        "changchun-gov",
        "harbin-gov@heilongjiang",
        "另函.txt",
        "另函".as_bytes(),
    );
    gongwen_tests::wait_inbox(&hlj.root("harbin-gov"), "changchun-gov@jilin", 1).await;
    assert_eq!(row(&peers(&j).await, "national")["queued"], 2);
    // gov-office comes online and takes its documents: all five arrive,
    // each once.
    let office = agent(&national, "gov-office", nat.addr);
    let docs =
        gongwen_tests::wait_inbox(&national.root("gov-office"), "changchun-gov@jilin", 5).await;
    assert_eq!(docs.len(), 5);
    wait_peers(&j, "jilin's queue empty", |v| {
        row(v, "national")["queued"] == 0
    })
    .await;
    office.stop().await;
    harbin.stop().await;
    changchun.stop().await;
    j.stop().await;
    h.stop().await;
    nat.stop().await;
}

/// changchun-gov is revoked in jilin: jilin's new list crosses to
/// national and on to heilongjiang, and a 签收 signed with its revoked
/// key — handed to national by a hostile stand-in for jilin's hub — is
/// refused; the copy stays delivered, not signed for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_signed_by_a_unit_revoked_in_its_domain_is_refused_once_the_list_crossed() {
    let (national, hlj, jilin) = three_domains();
    let (nat, h, j) = linked_with_units(&national, &hlj, &jilin).await;
    let mut harbin = agent(&hlj, "harbin-gov", h.addr);
    let mut changchun = agent(&jilin, "changchun-gov", j.addr);
    harbin.wait_connected().await;
    changchun.wait_connected().await;
    let outbox = hlj.root("harbin-gov").join("outbox");
    gongwen_tests::wait_until("the outbox folder of changchun-gov@jilin", || {
        outbox.join("changchun-gov@jilin").is_dir().then_some(())
    })
    .await;
    hlj.drop_file(
        "harbin-gov",
        "changchun-gov@jilin",
        "函.txt",
        "内容".as_bytes(),
    );
    let docs =
        gongwen_tests::wait_inbox(&jilin.root("changchun-gov"), "harbin-gov@heilongjiang", 1).await;
    let doc: gongwen_common::DocId = docs[0]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    changchun.wait_received(doc).await;
    changchun.stop().await;

    jilin.revoke("changchun-gov");
    let fresh =
        gongwen_common::pki::Crl::load(&jilin.path().join("ca/crl.pem"), jilin.ca().cert_der())
            .unwrap()
            .der
            .to_vec();
    for hub in [&nat, &h] {
        let kept = hub.data_dir.join("federation/jilin.crl");
        gongwen_tests::wait_until("jilin's new list kept", || {
            (std::fs::read(&kept).ok()? == fresh).then_some(())
        })
        .await;
    }
    // The revoked unit's key, its 签收.
    let dir = jilin.path().join("changchun-gov");
    let signer = gongwen_common::signed::Signer::new(
        &gongwen_common::pki::load_private_key(&dir.join("changchun-gov.key")).unwrap(),
        gongwen_common::pki::load_certs(&dir.join("changchun-gov.crt")).unwrap()[0].clone(),
    )
    .unwrap();
    let status = gongwen_tests::ask_hub(
        &nat.data_dir,
        &gongwen_hub::ops::control::Request::Status { doc },
    )
    .await;
    let digest = status["digest"].as_str().unwrap();
    let mut doc_digest = [0u8; 32];
    for (i, b) in doc_digest.iter_mut().enumerate() {
        *b = u8::from_str_radix(&digest[2 * i..2 * i + 2], 16).unwrap();
    }
    let unit = gongwen_common::NodeId::parse("changchun-gov").unwrap();
    let receipt = gongwen_common::receipt::Receipt {
        doc_id: doc,
        kind: gongwen_common::receipt::ReceiptKind::Acknowledged,
        recipient: unit.clone(),
        issuer: unit,
        doc_digest,
        time_ms: 0,
        by: "李四".into(),
        reason: String::new(),
        seals: Vec::new(),
    }
    .sign(&signer)
    .unwrap()
    .encode();
    let hostile = gongwen_tests::federation::RawPeer::connect(&jilin, "jilin", &national, nat.addr)
        .await
        .unwrap();
    let answer = gongwen_common::stream::request(
        &hostile.conn,
        &gongwen_common::wire::Message::ReceiptNotice { receipt },
        gongwen_common::stream::READ_TIMEOUT,
    )
    .await
    .unwrap();
    match &answer {
        gongwen_common::wire::Message::Error { message, .. } => {
            assert!(message.contains("revoked"), "{message}")
        }
        other => panic!("national took it: {other:?}"),
    }
    let status = gongwen_tests::ask_hub(
        &nat.data_dir,
        &gongwen_hub::ops::control::Request::Status { doc },
    )
    .await;
    let text = status.to_string();
    assert!(
        !text.contains("李四") && !text.contains("\"acknowledged\""),
        "{status:#}"
    );
    harbin.stop().await;
    j.stop().await;
    h.stop().await;
    nat.stop().await;
}

/// A copy at jilin not signed for in time: the ladder of heilongjiang (the
/// sender's hub) runs for it, its urge (催办) crosses to the unit at
/// jilin, and its 督办 goes once to heilongjiang's own supervision office;
/// national and jilin, which only carry the document, urge and escalate
/// nothing of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_copy_overdue_is_urged_across_and_escalated_once_at_the_senders_office() {
    const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);
    let (national, hlj, jilin) = three_domains();
    enroll(&hlj, &[("harbin-gov", "哈尔滨市人民政府")]);
    enroll(&jilin, &[("changchun-gov", "长春市人民政府")]);
    hlj.issue("prov-supervision", gongwen_common::Role::Supervisor);
    let clock = Arc::new(ManualClock::new(OffsetDateTime::now_utc()));
    let nat = start_hub(&national, "national", &national_peers(), clock::system()).await;
    let h = start_hub(
        &hlj,
        "heilongjiang",
        &[PeerEntry::dial("national", nat.addr, &["jilin"])],
        clock.clone(),
    )
    .await;
    let j = start_hub(
        &jilin,
        "jilin",
        &[PeerEntry::dial("national", nat.addr, &["heilongjiang"])],
        clock::system(),
    )
    .await;
    wait_peers(&h, "jilin known through national", |v| {
        v.as_array().unwrap().iter().any(|p| p["domain"] == "jilin")
            && row(v, "jilin")["crl_issued"].is_string()
    })
    .await;
    let mut harbin = agent(&hlj, "harbin-gov", h.addr);
    let mut changchun = agent(&jilin, "changchun-gov", j.addr);
    let mut office = hlj.start_agent("prov-supervision", h.addr);
    for a in [&mut harbin, &mut changchun, &mut office] {
        a.wait_connected().await;
    }
    gongwen_tests::wait_until("the outbox folder of changchun-gov@jilin", || {
        hlj.root("harbin-gov")
            .join("outbox/changchun-gov@jilin")
            .is_dir()
            .then_some(())
    })
    .await;
    hlj.sidecar(
        "harbin-gov",
        "changchun-gov@jilin",
        "急件.txt",
        "title = \"关于紧急事项的函\"\nurgency = \"urgent\"\n",
    );
    hlj.drop_file(
        "harbin-gov",
        "changchun-gov@jilin",
        "急件.txt",
        "内容".as_bytes(),
    );
    let docs =
        gongwen_tests::wait_inbox(&jilin.root("changchun-gov"), "harbin-gov@heilongjiang", 1).await;
    let doc: gongwen_common::DocId = docs[0]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    changchun.wait_received(doc).await;

    // Past the urgent deadline (4 h) by heilongjiang's clock: urged.
    clock.advance(4 * HOUR + std::time::Duration::from_secs(1));
    h.handle.escalate_now().await.unwrap();
    gongwen_tests::wait_until("the urge at changchun-gov", || {
        let (rec, _) = changchun.parts.store().received(doc).ok()??;
        (rec.urge_count == 1).then_some(())
    })
    .await;
    // Two hours on: 督办, once, at heilongjiang's supervision office.
    clock.advance(2 * HOUR);
    h.handle.escalate_now().await.unwrap();
    assert_eq!(
        h.handle.escalate_now().await.unwrap(),
        0,
        "a step runs once"
    );
    let dir = hlj.root("prov-supervision").join("inbox/督办");
    let text = gongwen_tests::wait_until("the 督办 notice at prov-supervision", || {
        let f = gongwen_tests::first_file(&dir)?;
        std::fs::read_to_string(f).ok()
    })
    .await;
    assert!(
        text.contains("changchun-gov@jilin") && text.contains(&doc.to_string()),
        "{text}"
    );
    // The sender's hub's overdue list names the copy elsewhere.
    let overdue =
        gongwen_tests::ask_hub(&h.data_dir, &gongwen_hub::ops::control::Request::Overdue).await;
    assert!(
        overdue.to_string().contains("changchun-gov@jilin"),
        "{overdue:#}"
    );
    // The hubs that carried it run no ladder of their own.
    assert_eq!(nat.handle.escalate_now().await.unwrap(), 0);
    assert_eq!(j.handle.escalate_now().await.unwrap(), 0);
    // Every hub on the way counts the urge.
    for hub in [&h, &nat, &j] {
        let v = gongwen_tests::ask_hub(
            &hub.data_dir,
            &gongwen_hub::ops::control::Request::Status { doc },
        )
        .await;
        let copy = &v["recipients"][0];
        assert_eq!(copy["urge_count"], 1, "{v:#}");
    }
    for a in [harbin, changchun, office] {
        a.stop().await;
    }
    j.stop().await;
    h.stop().await;
    nat.stop().await;
}

/// The sender recalls (撤回) a document delivered at jilin: the recall
/// follows the copy there; every hub on the way marks it recalled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recall_follows_the_copy_to_the_other_domain() {
    let (national, hlj, jilin) = three_domains();
    let (nat, h, j) = linked_with_units(&national, &hlj, &jilin).await;
    let mut harbin = agent(&hlj, "harbin-gov", h.addr);
    let mut changchun = agent(&jilin, "changchun-gov", j.addr);
    harbin.wait_connected().await;
    changchun.wait_connected().await;
    gongwen_tests::wait_until("the outbox folder of changchun-gov@jilin", || {
        hlj.root("harbin-gov")
            .join("outbox/changchun-gov@jilin")
            .is_dir()
            .then_some(())
    })
    .await;
    hlj.drop_file(
        "harbin-gov",
        "changchun-gov@jilin",
        "误发之函.txt",
        "内容".as_bytes(),
    );
    let docs =
        gongwen_tests::wait_inbox(&jilin.root("changchun-gov"), "harbin-gov@heilongjiang", 1).await;
    let doc: gongwen_common::DocId = docs[0]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    changchun.wait_received(doc).await;
    gongwen_tests::ask_agent(
        &hlj.root("harbin-gov"),
        &gongwen_agent::front::control::Request::Recall {
            doc,
            reason: "误发".into(),
        },
    )
    .await
    .unwrap();
    gongwen_tests::wait_until("the recall at changchun-gov", || {
        let (rec, _) = changchun.parts.store().received(doc).ok()??;
        (rec.state == gongwen_agent::unit::store::ReceivedState::Recalled).then_some(())
    })
    .await;
    for hub in [&h, &nat, &j] {
        let v = gongwen_tests::ask_hub(
            &hub.data_dir,
            &gongwen_hub::ops::control::Request::Status { doc },
        )
        .await;
        assert_eq!(v["recipients"][0]["state"], "recalled", "{v:#}");
    }
    harbin.stop().await;
    changchun.stop().await;
    j.stop().await;
    h.stop().await;
    nat.stop().await;
}

/// national is killed (SIGKILL) halfway through handing jilin a 64 MiB
/// document, and restarted: the transfer resumes where jilin's copy was
/// durable, and the document arrives once, whole, with one delivered
/// receipt at the sender.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn national_killed_mid_transfer_delivers_every_document_exactly_once() {
    let (national, hlj, jilin) = three_domains();
    enroll(&hlj, &[("harbin-gov", "哈尔滨市人民政府")]);
    enroll(&jilin, &[("changchun-gov", "长春市人民政府")]);
    let config = hub_config(
        &national,
        "national",
        "127.0.0.1:0".parse().unwrap(),
        &national_peers(),
    );
    let mut nat =
        gongwen_tests::HubProcess::start_config(&national, config, Some("hub-relay-mid-content"))
            .await;
    let nat_addr = nat.addr;
    let h = start_hub(
        &hlj,
        "heilongjiang",
        &[PeerEntry::dial("national", nat_addr, &["jilin"])],
        clock::system(),
    )
    .await;
    let j = start_hub(
        &jilin,
        "jilin",
        &[PeerEntry::dial("national", nat_addr, &["heilongjiang"])],
        clock::system(),
    )
    .await;
    wait_peers(&h, "jilin known through national", |v| {
        v.as_array().unwrap().iter().any(|p| p["domain"] == "jilin")
            && row(v, "jilin")["crl_issued"].is_string()
            && row(v, "jilin")["units"] == 1
    })
    .await;
    let mut harbin = agent(&hlj, "harbin-gov", h.addr);
    let mut changchun = agent(&jilin, "changchun-gov", j.addr);
    harbin.wait_connected().await;
    changchun.wait_connected().await;
    gongwen_tests::wait_until("the outbox folder of changchun-gov@jilin", || {
        hlj.root("harbin-gov")
            .join("outbox/changchun-gov@jilin")
            .is_dir()
            .then_some(())
    })
    .await;
    let mut body = vec![0u8; 64 << 20];
    for (i, b) in body.iter_mut().enumerate() {
        *b = (i.wrapping_mul(2654435761) >> 13) as u8;
    }
    hlj.drop_file("harbin-gov", "changchun-gov@jilin", "大文件.bin", &body);
    nat.wait_crash("national, halfway through handing it to jilin")
        .await;
    let config = hub_config(&national, "national", nat_addr, &national_peers());
    let nat = gongwen_tests::HubProcess::start_config(&national, config, None).await;
    let docs =
        gongwen_tests::wait_inbox(&jilin.root("changchun-gov"), "harbin-gov@heilongjiang", 1).await;
    let got = std::fs::read(docs[0].join("大文件.bin")).unwrap();
    assert!(got == body, "the content arrived changed");
    // jilin took up its copy where it was durable, not from the start.
    let stats =
        gongwen_tests::ask_hub(&j.data_dir, &gongwen_hub::ops::control::Request::Stats).await;
    assert!(stats["uploads_resumed"].as_u64().unwrap() >= 1, "{stats:#}");
    let status = gongwen_tests::wait_status(&hlj.root("harbin-gov"), "delivered at jilin", |s| {
        s.iter().any(|d| {
            d.recipients.iter().any(|r| {
                r.receipts
                    .contains(&gongwen_common::receipt::ReceiptKind::Delivered)
            })
        })
    })
    .await;
    assert_eq!(status.len(), 1);
    // Once: nothing more arrives after the receipt came back.
    assert_eq!(
        gongwen_tests::inbox_docs(&jilin.root("changchun-gov"), "harbin-gov@heilongjiang").len(),
        1
    );
    let v = gongwen_tests::federation::peers(&h).await;
    assert_eq!(row(&v, "jilin")["queued"], 0);
    harbin.stop().await;
    changchun.stop().await;
    j.stop().await;
    h.stop().await;
    drop(nat);
}

/// heilongjiang runs two hubs on one PostgreSQL database: one domain, both
/// linked to national. A unit sends across through one; when that hub
/// stops, through the other; every receipt comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_province_on_two_hubs_sharing_postgresql_is_one_domain() {
    if !gongwen_tests::pg::available() {
        return;
    }
    let cluster = gongwen_tests::pg::Cluster::start();
    let (national, hlj, jilin) = three_domains();
    enroll(&hlj, &[("harbin-gov", "哈尔滨市人民政府")]);
    enroll(&jilin, &[("changchun-gov", "长春市人民政府")]);
    let nat = start_hub(&national, "national", &national_peers(), clock::system()).await;
    let j = start_hub(
        &jilin,
        "jilin",
        &[PeerEntry::dial("national", nat.addr, &["heilongjiang"])],
        clock::system(),
    )
    .await;
    let shared = format!(
        "[store]\npostgres = \"{}\"\npoll = \"1s\"\nlease = \"3s\"\n{}",
        cluster.conn(),
        gongwen_tests::federation::federation_toml(
            "heilongjiang",
            &[PeerEntry::dial("national", nat.addr, &["jilin"])]
        )
    );
    let hub = |name: &str| {
        let mut config = hlj.hub_config_as(name, "127.0.0.1:0".parse().unwrap(), &shared);
        config.tls.directory = Some(hlj.path().join("ca/directory.gwd"));
        config
    };
    let a = hlj.start_hub_config(hub("hub-a"), clock::system()).await;
    let b = hlj.start_hub_config(hub("hub-b"), clock::system()).await;
    for h in [&a, &b] {
        wait_peers(h, "jilin known through national", |v| {
            v.as_array().unwrap().iter().any(|p| p["domain"] == "jilin")
                && row(v, "jilin")["crl_issued"].is_string()
                && row(v, "jilin")["units"] == 1
        })
        .await;
    }
    let key = hlj.path().join("harbin-gov/enc.key");
    let mut harbin = gongwen_tests::RunningAgent::start(hlj.agent_config_hubs(
        "harbin-gov",
        &[a.addr, b.addr],
        &format!("encryption_key = \"{}\"", key.display()),
    ));
    let mut changchun = agent(&jilin, "changchun-gov", j.addr);
    harbin.wait_connected().await;
    changchun.wait_connected().await;
    gongwen_tests::wait_until("the outbox folder of changchun-gov@jilin", || {
        hlj.root("harbin-gov")
            .join("outbox/changchun-gov@jilin")
            .is_dir()
            .then_some(())
    })
    .await;
    let delivered = |n: usize| {
        let root = hlj.root("harbin-gov");
        async move {
            gongwen_tests::wait_status(&root, "receipts from jilin", |s| {
                s.iter()
                    .filter(|d| {
                        d.recipients.iter().any(|r| {
                            r.receipts
                                .contains(&gongwen_common::receipt::ReceiptKind::Delivered)
                        })
                    })
                    .count()
                    >= n
            })
            .await
        }
    };
    hlj.drop_file(
        "harbin-gov",
        "changchun-gov@jilin",
        "第一件.txt",
        "一".as_bytes(),
    );
    delivered(1).await;
    // The hub the unit is on stops; it goes on through the other.
    a.stop().await;
    harbin.wait_connected().await;
    hlj.drop_file(
        "harbin-gov",
        "changchun-gov@jilin",
        "第二件.txt",
        "二".as_bytes(),
    );
    delivered(2).await;
    let docs =
        gongwen_tests::wait_inbox(&jilin.root("changchun-gov"), "harbin-gov@heilongjiang", 2).await;
    assert_eq!(docs.len(), 2);
    harbin.stop().await;
    changchun.stop().await;
    b.stop().await;
    j.stop().await;
    nat.stop().await;
}

/// 国务院 → 省 → 市: national's notice to its group of provinces reaches
/// each province's government; heilongjiang forwards it (转发) to its
/// cities, the first issuer's signed header inside, which each city checks
/// against national's CA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn national_notifies_its_provinces_and_heilongjiang_forwards_it_to_its_cities() {
    let (national, hlj, jilin) = three_domains();
    enroll_in_groups(
        &hlj,
        &[
            ("gov", "黑龙江省人民政府", &[]),
            ("harbin-gov", "哈尔滨市人民政府", &["市级"]),
            ("daqing-gov", "大庆市人民政府", &["市级"]),
        ],
    );
    enroll(&jilin, &[("gov", "吉林省人民政府")]);
    enroll(&national, &[("gov-office", "国务院办公厅")]);
    let mut config = hub_config(
        &national,
        "national",
        "127.0.0.1:0".parse().unwrap(),
        &national_peers(),
    );
    config.groups.insert(
        "provinces".into(),
        vec![
            gongwen_common::NodeId::parse_address("gov@heilongjiang").unwrap(),
            gongwen_common::NodeId::parse_address("gov@jilin").unwrap(),
        ],
    );
    let nat = national.start_hub_config(config, clock::system()).await;
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
    for (hub, d) in [
        (&nat, "heilongjiang"),
        (&nat, "jilin"),
        (&h, "national"),
        (&j, "national"),
    ] {
        wait_peers(hub, "the directories", |v| {
            row(v, d)["units"].as_u64().is_some_and(|n| n >= 1)
        })
        .await;
    }
    let mut agents = vec![
        agent(&national, "gov-office", nat.addr),
        agent(&hlj, "gov", h.addr),
        agent(&hlj, "harbin-gov", h.addr),
        agent(&hlj, "daqing-gov", h.addr),
        agent(&jilin, "gov", j.addr),
    ];
    for a in &mut agents {
        a.wait_connected().await;
    }
    gongwen_tests::wait_until("the provinces folder at national", || {
        national
            .root("gov-office")
            .join("outbox/provinces")
            .is_dir()
            .then_some(())
    })
    .await;
    let body = "关于做好岁末年初有关工作的通知\n".repeat(100);
    national.drop_file(
        "gov-office",
        "provinces",
        "关于做好岁末年初有关工作的通知.txt",
        body.as_bytes(),
    );
    let at_hlj = gongwen_tests::wait_inbox(&hlj.root("gov"), "gov-office@national", 1).await;
    gongwen_tests::wait_inbox(&jilin.root("gov"), "gov-office@national", 1).await;
    let doc: gongwen_common::DocId = at_hlj[0]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    agents[1].wait_received(doc).await;
    gongwen_tests::ask_agent(
        &hlj.root("gov"),
        &gongwen_agent::front::control::Request::Ack {
            doc,
            by: "王五".into(),
        },
    )
    .await
    .unwrap();
    gongwen_tests::ask_agent(
        &hlj.root("gov"),
        &gongwen_agent::front::control::Request::Forward(Box::new(
            gongwen_agent::actions::forward::ForwardRequest {
                doc,
                to: vec!["cities".into()],
                cc: vec![],
                note: Some("请认真贯彻落实".into()),
                by: Some("王五".into()),
            },
        )),
    )
    .await
    .unwrap();
    for city in ["harbin-gov", "daqing-gov"] {
        let docs = gongwen_tests::wait_inbox(&hlj.root(city), "gov", 1).await;
        let got = std::fs::read(docs[0].join("关于做好岁末年初有关工作的通知.txt")).unwrap();
        assert_eq!(got, body.as_bytes(), "{city}");
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(docs[0].join("metadata.json")).unwrap()).unwrap();
        assert_eq!(
            meta["forwarded_from"]["doc_id"],
            doc.to_string(),
            "{meta:#}"
        );
        assert_eq!(
            meta["forwarded_from"]["sender"], "gov-office@national",
            "{meta:#}"
        );
    }
    // harbin signs for its copy (签收).
    let forwarded: gongwen_common::DocId =
        gongwen_tests::wait_inbox(&hlj.root("harbin-gov"), "gov", 1).await[0]
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
    agents[2].wait_received(forwarded).await;
    gongwen_tests::ask_agent(
        &hlj.root("harbin-gov"),
        &gongwen_agent::front::control::Request::Ack {
            doc: forwarded,
            by: "赵六".into(),
        },
    )
    .await
    .unwrap();
    // At national: both provinces have it, and the cascade below
    // heilongjiang shows, asked of heilongjiang's hub: to whom its
    // government passed it on, and where each city's copy stands.
    let copy_of = |v: &serde_json::Value, province: &str| {
        v["recipients"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["recipient"] == province)
            .cloned()
            .unwrap_or_default()
    };
    let state_at = |v: &serde_json::Value, city: &str| {
        copy_of(v, "gov@heilongjiang")["forwarded"][0]["recipients"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["recipient"] == city)
            .map(|r| r["state"].as_str().unwrap_or("").to_owned())
    };
    let v = wait_hub_status(&nat, doc, "the cascade at national", |v| {
        state_at(v, "harbin-gov@heilongjiang").as_deref() == Some("acknowledged")
            && state_at(v, "daqing-gov@heilongjiang").as_deref() == Some("delivered")
    })
    .await;
    let hlj_copy = copy_of(&v, "gov@heilongjiang");
    assert_eq!(
        hlj_copy["forwarded"][0]["doc_id"],
        forwarded.to_string(),
        "{v:#}"
    );
    assert!(copy_of(&v, "gov@jilin")["forwarded"].is_null(), "{v:#}");
    assert!(v["cascade_unknown"].is_null(), "{v:#}");
    // `gongwen-hub status`'s words for an administrator.
    let text = gongwen_common::display::doc_status(&v, false);
    assert!(
        text.contains(&format!("forwarded as {forwarded} to ")),
        "{text}"
    );
    // A group of another domain, as its CA's directory lists it
    // (`市级@heilongjiang`): an outbox folder at national, and a document
    // dropped there reaches each of its members.
    let group_folder = national.root("gov-office").join("outbox/市级@heilongjiang");
    gongwen_tests::wait_until(
        "the folder of heilongjiang's group 市级 at national",
        || group_folder.is_dir().then_some(()),
    )
    .await;
    national.drop_file(
        "gov-office",
        "市级@heilongjiang",
        "致各市的函.txt",
        "致各市".as_bytes(),
    );
    for city in ["harbin-gov", "daqing-gov"] {
        let docs = gongwen_tests::wait_inbox(&hlj.root(city), "gov-office@national", 1).await;
        assert_eq!(
            std::fs::read(docs[0].join("致各市的函.txt")).unwrap(),
            "致各市".as_bytes(),
            "{city}"
        );
    }
    // heilongjiang's hub gone: national still shows what it holds, and
    // says whose cascade it cannot see.
    h.stop().await;
    let v = wait_hub_status(&nat, doc, "heilongjiang named unknown", |v| {
        v["cascade_unknown"].to_string().contains("heilongjiang")
    })
    .await;
    assert!(
        copy_of(&v, "gov@heilongjiang")["forwarded"].is_null(),
        "{v:#}"
    );
    assert!(!v["cascade_unknown"].to_string().contains("jilin"), "{v:#}");
    for a in agents {
        a.stop().await;
    }
    j.stop().await;
    nat.stop().await;
}

/// A document for more units elsewhere than a header lists keys for (the
/// tree form, above 64): it crosses with every key's leaf, and each unit
/// at jilin gets its own copy with the proof of its key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_for_65_units_elsewhere_crosses_in_the_tree_form() {
    let (national, hlj, jilin) = three_domains();
    enroll(&hlj, &[("harbin-gov", "哈尔滨市人民政府")]);
    let names: Vec<(String, String)> = (0..65)
        .map(|i| (format!("county-{i:02}"), format!("第{i}县人民政府")))
        .collect();
    let units: Vec<(&str, &str)> = names
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    enroll(&jilin, &units);
    let nat = start_hub(&national, "national", &national_peers(), clock::system()).await;
    let mut config = hub_config(
        &hlj,
        "heilongjiang",
        "127.0.0.1:0".parse().unwrap(),
        &[PeerEntry::dial("national", nat.addr, &["jilin"])],
    );
    config.groups.insert(
        "jilin-counties".into(),
        names
            .iter()
            .map(|(id, _)| gongwen_common::NodeId::parse_address(&format!("{id}@jilin")).unwrap())
            .collect(),
    );
    let h = hlj.start_hub_config(config, clock::system()).await;
    let j = start_hub(
        &jilin,
        "jilin",
        &[PeerEntry::dial("national", nat.addr, &["heilongjiang"])],
        clock::system(),
    )
    .await;
    wait_peers(&h, "jilin's 65 units known", |v| {
        v.as_array().unwrap().iter().any(|p| p["domain"] == "jilin")
            && row(v, "jilin")["units"] == 65
            && row(v, "jilin")["crl_issued"].is_string()
    })
    .await;
    let mut harbin = agent(&hlj, "harbin-gov", h.addr);
    let mut county = agent(&jilin, "county-07", j.addr);
    harbin.wait_connected().await;
    county.wait_connected().await;
    gongwen_tests::wait_until("the group folder", || {
        hlj.root("harbin-gov")
            .join("outbox/jilin-counties")
            .is_dir()
            .then_some(())
    })
    .await;
    hlj.drop_file(
        "harbin-gov",
        "jilin-counties",
        "通知.txt",
        "各县：".as_bytes(),
    );
    let docs =
        gongwen_tests::wait_inbox(&jilin.root("county-07"), "harbin-gov@heilongjiang", 1).await;
    assert_eq!(
        std::fs::read(docs[0].join("通知.txt")).unwrap(),
        "各县：".as_bytes()
    );
    gongwen_tests::wait_status(&hlj.root("harbin-gov"), "county-07's receipt", |s| {
        s.iter().any(|d| {
            d.recipients.len() == 65
                && d.recipients.iter().any(|r| {
                    r.recipient == "county-07@jilin"
                        && r.receipts
                            .contains(&gongwen_common::receipt::ReceiptKind::Delivered)
                })
        })
    })
    .await;
    let doc: gongwen_common::DocId = docs[0]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let v = gongwen_tests::ask_hub(
        &j.data_dir,
        &gongwen_hub::ops::control::Request::Status { doc },
    )
    .await;
    assert_eq!(v["recipients"].as_array().unwrap().len(), 65, "{v:#}");
    harbin.stop().await;
    county.stop().await;
    j.stop().await;
    h.stop().await;
    nat.stop().await;
}

/// national asks jilin for a report (通知→上报); jilin's answer crosses
/// back, and national's hub records the copy answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_to_a_question_from_another_domain_crosses_back() {
    let (national, hlj, jilin) = three_domains();
    enroll(&hlj, &[("harbin-gov", "哈尔滨市人民政府")]);
    enroll(&jilin, &[("gov", "吉林省人民政府")]);
    enroll(&national, &[("gov-office", "国务院办公厅")]);
    let nat = start_hub(&national, "national", &national_peers(), clock::system()).await;
    let j = start_hub(
        &jilin,
        "jilin",
        &[PeerEntry::dial("national", nat.addr, &["heilongjiang"])],
        clock::system(),
    )
    .await;
    wait_peers(&nat, "jilin's directory", |v| row(v, "jilin")["units"] == 1).await;
    wait_peers(&j, "national's directory", |v| {
        row(v, "national")["units"] == 1
    })
    .await;
    let mut office = agent(&national, "gov-office", nat.addr);
    let mut gov = agent(&jilin, "gov", j.addr);
    office.wait_connected().await;
    gov.wait_connected().await;
    gongwen_tests::wait_until("the folder of gov@jilin", || {
        national
            .root("gov-office")
            .join("outbox/gov@jilin")
            .is_dir()
            .then_some(())
    })
    .await;
    national.sidecar(
        "gov-office",
        "gov@jilin",
        "关于报送年度工作总结的通知.txt",
        "doc_type = \"通知\"\nreply = \"report\"\nreply_by = \"5d\"\n",
    );
    national.drop_file(
        "gov-office",
        "gov@jilin",
        "关于报送年度工作总结的通知.txt",
        "请于五日内报送。".as_bytes(),
    );
    let docs = gongwen_tests::wait_inbox(&jilin.root("gov"), "gov-office@national", 1).await;
    let doc: gongwen_common::DocId = docs[0]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    gov.wait_received(doc).await;
    let report = jilin.path().join("吉林省年度工作总结.txt");
    std::fs::write(&report, "总结如下。").unwrap();
    gongwen_tests::ask_agent(
        &jilin.root("gov"),
        &gongwen_agent::front::control::Request::Reply(Box::new(
            gongwen_agent::actions::reply::ReplyRequest {
                doc,
                files: vec![report],
                decision: None,
                note: None,
                title: Some("吉林省年度工作总结".into()),
                supersedes: None,
                cc: vec![],
                by: "赵六".into(),
            },
        )),
    )
    .await
    .unwrap();
    let answers = gongwen_tests::wait_inbox(&national.root("gov-office"), "gov@jilin", 1).await;
    assert_eq!(
        std::fs::read(answers[0].join("吉林省年度工作总结.txt")).unwrap(),
        "总结如下。".as_bytes()
    );
    let v = gongwen_tests::wait_within(
        "the answer recorded at national",
        gongwen_tests::WAIT,
        || {
            let v = futures_block(gongwen_tests::ask_hub(
                &nat.data_dir,
                &gongwen_hub::ops::control::Request::Status { doc },
            ));
            let text = v.to_string();
            if text.contains("\"answered\"") {
                Ok(v)
            } else {
                Err(format!("{v:#}"))
            }
        },
    )
    .await;
    let copy = &v["recipients"][0];
    assert_eq!(copy["recipient"], "gov@jilin", "{v:#}");
    assert_eq!(copy["reply_state"], "answered", "{v:#}");
    let answer_id = answers[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert_eq!(copy["answer"], answer_id, "{v:#}");
    // 汇总 at national: the unit elsewhere is a row like any other, its
    // answer's files in a folder of its own.
    let out = national.path().join("汇总");
    let done = gongwen_tests::ask_agent(
        &national.root("gov-office"),
        &gongwen_agent::front::control::Request::Collect {
            doc,
            out: out.clone(),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        (done["recipients"].as_u64(), done["answered"].as_u64()),
        (Some(1), Some(1)),
        "{done}"
    );
    let folder = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("gov@jilin"))
        .unwrap_or_else(|| panic!("no folder for gov@jilin in {out:?}"))
        .path();
    assert_eq!(
        std::fs::read(folder.join("吉林省年度工作总结.txt")).unwrap(),
        "总结如下。".as_bytes()
    );
    let csv = std::fs::read_to_string(out.join("汇总表.csv")).unwrap();
    assert_eq!(csv.lines().count(), 2, "{csv}");
    assert!(
        csv.contains("gov@jilin") && csv.contains("吉林省人民政府"),
        "{csv}"
    );
    use gongwen_tests::tools;
    if tools::require(
        "openpyxl",
        "python3-openpyxl",
        tools::python_has("openpyxl"),
    ) {
        let book = gongwen_tests::read_summary_workbook(&out.join("汇总表.xlsx"));
        let row = &book["rows"][0];
        assert_eq!(row[0], "gov@jilin", "{book}");
        assert_eq!(row[1], "吉林省人民政府", "{book}");
        assert_eq!(row[5], "按时", "{book}");
        assert_eq!(row[8], "吉林省年度工作总结.txt", "{book}");
    }
    office.stop().await;
    gov.stop().await;
    j.stop().await;
    nat.stop().await;
}

fn futures_block<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

/// A clerk at heilongjiang, in a real browser: the compose page offers
/// changchun-gov@jilin by its name; the document composed there crosses to
/// jilin, and the sent page shows the unit elsewhere signed for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clerk_picks_a_unit_elsewhere_by_its_name_in_the_browser() {
    use gongwen_agent::unit::accounts::{Accounts, UserRole};
    use gongwen_tests::browser::{self, Chrome};
    use gongwen_tests::web::{PASSWORD, base};
    if !browser::available() {
        return;
    }
    let (national, hlj, jilin) = three_domains();
    let (nat, h, j) = linked_with_units(&national, &hlj, &jilin).await;
    Accounts::edit(&hlj.root("harbin-gov").join("state/accounts.json"), |a| {
        a.add_user("wang", "王五", UserRole::Clerk, PASSWORD, 0)
    })
    .unwrap();
    let mut harbin = gongwen_tests::federation::agent_with(
        &hlj,
        "harbin-gov",
        h.addr,
        "[console]\nlisten = \"127.0.0.1:0\"",
    );
    let mut changchun = agent(&jilin, "changchun-gov", j.addr);
    harbin.wait_connected().await;
    changchun.wait_connected().await;
    gongwen_tests::wait_until("the outbox folder of changchun-gov@jilin", || {
        hlj.root("harbin-gov")
            .join("outbox/changchun-gov@jilin")
            .is_dir()
            .then_some(())
    })
    .await;
    let files = tempfile::tempdir().unwrap();
    let main = files.path().join("正文.txt");
    std::fs::write(&main, "关于两省协作的函\n".repeat(20)).unwrap();

    let mut chrome = Chrome::start().await;
    let console = base(&harbin);
    chrome.log_in(&console, "wang", PASSWORD).await;
    chrome.goto(&format!("{console}/compose")).await;
    let page = chrome.text().await;
    assert!(page.contains("长春市人民政府"), "{page}");
    chrome
        .click("input[name=to][value='changchun-gov@jilin']")
        .await;
    chrome
        .type_into("input[name=title]", "关于两省协作的函")
        .await;
    chrome.choose_file("input[name=main]", &main).await;
    chrome.screenshot("federation-1-compose").await;
    chrome.click("form.compose button[type=submit]").await;

    let docs =
        gongwen_tests::wait_inbox(&jilin.root("changchun-gov"), "harbin-gov@heilongjiang", 1).await;
    assert_eq!(
        std::fs::read(docs[0].join("正文.txt")).unwrap(),
        std::fs::read(&main).unwrap()
    );
    let doc: gongwen_common::DocId = docs[0]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    changchun.wait_received(doc).await;
    gongwen_tests::ask_agent(
        &jilin.root("changchun-gov"),
        &gongwen_agent::front::control::Request::Ack {
            doc,
            by: "李四".into(),
        },
    )
    .await
    .unwrap();
    let sent = chrome
        .wait_for_text(&format!("{console}/sent/{doc}"), "已签收 1 / 共 1")
        .await;
    assert!(sent.contains("李四"), "{sent}");
    chrome.screenshot("federation-2-signed-elsewhere").await;
    chrome.quit().await;
    harbin.stop().await;
    changchun.stop().await;
    j.stop().await;
    h.stop().await;
    nat.stop().await;
}

/// 国务院 → 省 → 市 → 县, three levels of hubs: a city (harbin) runs its
/// own hub under heilongjiang's, and national reaches it only through
/// heilongjiang (a chain of two statements). national's notice goes to
/// heilongjiang's government, which forwards it to harbin's, which
/// forwards it to its district 呼兰区: the district holds the first
/// issuer's bytes, judged by national's CA two links away. national also
/// writes to the district directly, three hubs on, and gets its 签收 back.
/// At each level `status` shows the cascade one level down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn national_reaches_a_district_three_hubs_away_directly_and_through_two_forwards() {
    let (national, hlj, harbin) = (Net::new(), Net::new(), Net::new());
    federate(&national, "heilongjiang", &hlj);
    federate(&hlj, "national", &national);
    federate(&hlj, "harbin", &harbin);
    federate(&harbin, "heilongjiang", &hlj);
    enroll(&national, &[("gov-office", "国务院办公厅")]);
    enroll(&hlj, &[("gov", "黑龙江省人民政府")]);
    enroll(
        &harbin,
        &[("gov", "哈尔滨市人民政府"), ("hulan-gov", "呼兰区人民政府")],
    );
    let nat = start_hub(
        &national,
        "national",
        &[PeerEntry {
            domain: "heilongjiang".into(),
            addr: None,
            routes: vec!["harbin".into()],
        }],
        clock::system(),
    )
    .await;
    let h = start_hub(
        &hlj,
        "heilongjiang",
        &[
            PeerEntry::dial("national", nat.addr, &[]),
            PeerEntry::accept("harbin"),
        ],
        clock::system(),
    )
    .await;
    let c = start_hub(
        &harbin,
        "harbin",
        &[PeerEntry::dial("heilongjiang", h.addr, &["national"])],
        clock::system(),
    )
    .await;
    // Each end knows the other's units, two hubs apart.
    wait_peers(&nat, "harbin's units at national", |v| {
        v.as_array()
            .unwrap()
            .iter()
            .any(|p| p["domain"] == "harbin")
            && row(v, "harbin")["units"] == 2
    })
    .await;
    wait_peers(&c, "national's units at harbin", |v| {
        v.as_array()
            .unwrap()
            .iter()
            .any(|p| p["domain"] == "national")
            && row(v, "national")["units"] == 1
    })
    .await;
    let mut agents = vec![
        agent(&national, "gov-office", nat.addr),
        agent(&hlj, "gov", h.addr),
        agent(&harbin, "gov", c.addr),
        agent(&harbin, "hulan-gov", c.addr),
    ];
    for a in &mut agents {
        a.wait_connected().await;
    }
    gongwen_tests::wait_until("the district's folder at national", || {
        let outbox = national.root("gov-office").join("outbox");
        (outbox.join("hulan-gov@harbin").is_dir() && outbox.join("gov@heilongjiang").is_dir())
            .then_some(())
    })
    .await;

    // Directly, three hubs on, and the 签收 back.
    national.drop_file(
        "gov-office",
        "hulan-gov@harbin",
        "直达之函.txt",
        "直达".as_bytes(),
    );
    let direct =
        gongwen_tests::wait_inbox(&harbin.root("hulan-gov"), "gov-office@national", 1).await;
    assert_eq!(
        std::fs::read(direct[0].join("直达之函.txt")).unwrap(),
        "直达".as_bytes()
    );
    let direct_id: gongwen_common::DocId = direct[0]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    agents[3].wait_received(direct_id).await;
    gongwen_tests::ask_agent(
        &harbin.root("hulan-gov"),
        &gongwen_agent::front::control::Request::Ack {
            doc: direct_id,
            by: "孙七".into(),
        },
    )
    .await
    .unwrap();
    gongwen_tests::wait_status(
        &national.root("gov-office"),
        "signed for three hubs away",
        |s| {
            s.iter().any(|d| {
                d.recipients.iter().any(|r| {
                    r.recipient == "hulan-gov@harbin"
                        && r.acknowledged_by.as_deref() == Some("孙七")
                })
            })
        },
    )
    .await;

    // Through two forwards.
    let body = "关于做好岁末年初有关工作的通知\n".repeat(50);
    national.drop_file(
        "gov-office",
        "gov@heilongjiang",
        "岁末年初通知.txt",
        body.as_bytes(),
    );
    let at_province = gongwen_tests::wait_inbox(&hlj.root("gov"), "gov-office@national", 1).await;
    let notice: gongwen_common::DocId = at_province[0]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    agents[1].wait_received(notice).await;
    let forward = |root: std::path::PathBuf, doc, to: &str, by: &str| {
        let to = to.to_owned();
        let by = by.to_owned();
        async move {
            gongwen_tests::ask_agent(
                &root,
                &gongwen_agent::front::control::Request::Ack {
                    doc,
                    by: by.clone(),
                },
            )
            .await
            .unwrap();
            gongwen_tests::ask_agent(
                &root,
                &gongwen_agent::front::control::Request::Forward(Box::new(
                    gongwen_agent::actions::forward::ForwardRequest {
                        doc,
                        to: vec![to],
                        cc: vec![],
                        note: None,
                        by: Some(by),
                    },
                )),
            )
            .await
            .unwrap();
        }
    };
    forward(hlj.root("gov"), notice, "gov@harbin", "王五").await;
    let at_city = gongwen_tests::wait_inbox(&harbin.root("gov"), "gov@heilongjiang", 1).await;
    let city_copy: gongwen_common::DocId = at_city[0]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    agents[2].wait_received(city_copy).await;
    forward(harbin.root("gov"), city_copy, "hulan-gov", "赵六").await;
    let at_district = gongwen_tests::wait_inbox(&harbin.root("hulan-gov"), "gov", 1).await;
    assert_eq!(
        std::fs::read(at_district[0].join("岁末年初通知.txt")).unwrap(),
        body.as_bytes()
    );
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(at_district[0].join("metadata.json")).unwrap())
            .unwrap();
    assert_eq!(
        meta["forwarded_from"]["sender"], "gov-office@national",
        "{meta:#}"
    );
    assert_eq!(
        meta["forwarded_from"]["doc_id"],
        notice.to_string(),
        "{meta:#}"
    );

    // The whole cascade at national: heilongjiang's forward to harbin
    // (signed for there before harbin passed it on), and harbin's to its
    // district (a forward of a forward names national's
    // notice too), asked hub by hub.
    let forwarded_to = |v: &serde_json::Value, by: &str| -> Vec<String> {
        v["recipients"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["recipient"] == by)
            .flat_map(|r| r["forwarded"].as_array().cloned().unwrap_or_default())
            .chain(
                v["forwarded_further"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|f| f["by"] == by)
                    .cloned(),
            )
            .flat_map(|f| f["recipients"].as_array().cloned().unwrap_or_default())
            .map(|c| {
                format!(
                    "{} {}",
                    c["recipient"].as_str().unwrap_or(""),
                    c["state"].as_str().unwrap_or("")
                )
            })
            .collect()
    };
    let v = wait_hub_status(&nat, notice, "the whole cascade at national", |v| {
        forwarded_to(v, "gov@heilongjiang") == ["gov@harbin acknowledged"]
            && forwarded_to(v, "gov@harbin") == ["hulan-gov@harbin delivered"]
    })
    .await;
    let text = gongwen_common::display::doc_status(&v, false);
    assert!(text.contains("gov@harbin forwarded as "), "{text}");
    // And at heilongjiang, what its government passed on and what came of it.
    wait_hub_status(&h, notice, "the cascade at heilongjiang", |v| {
        forwarded_to(v, "gov") == ["gov@harbin acknowledged"]
            && forwarded_to(v, "gov@harbin") == ["hulan-gov@harbin delivered"]
    })
    .await;
    for a in agents {
        a.stop().await;
    }
    c.stop().await;
    h.stop().await;
    nat.stop().await;
}
