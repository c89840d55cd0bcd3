//! National scale on one hub (issue 23): a unit past `max_connections` is
//! refused before any TLS and told when to come back; a directory of
//! 20,000 units (15 MB, past the wire's 1 MiB) starts the hub; a group of
//! 5,000 members is looked up in parts, sealed and queued for every member,
//! and a member opens its copy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use gongwen_agent::{LinkError, LinkState};
use gongwen_certs::{IssueRequest, Validity};
use gongwen_common::{NodeId, Role};
use gongwen_tests::{Net, RunningAgent, prom, wait_inbox, wait_status};
use time::OffsetDateTime;

/// The metrics text's value of `series` (a full line name with labels).
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_past_max_connections_is_refused_before_its_handshake_and_told_when_to_retry() {
    let net = Net::new();
    for id in ["harbin-gov", "daqing-gov"] {
        net.issue(id, Role::Node);
    }
    let config = net.hub_config_as(
        "hub",
        "127.0.0.1:0".parse().unwrap(),
        "[limits]\nmax_connections = 1\n[metrics]\nlisten = \"127.0.0.1:0\"\n",
    );
    assert_eq!(config.max_connections, Some(1));
    let hub = net
        .start_hub_config(config, gongwen_common::clock::system())
        .await;
    let metrics = hub.metrics.expect("the hub serves metrics");

    // Before the hub is full, a stranger (another CA's certificate) is
    // turned away by TLS: the handshake ran.
    let other = Net::new();
    other.issue("harbin-gov", Role::Node);
    let mut stranger = RunningAgent::start(other.agent_config("harbin-gov", hub.addr));
    let e = stranger.wait_error().await;
    assert_ne!(e, LinkError::HubTurnedAway, "{e}");
    stranger.stop().await;

    let mut harbin = net.start_agent("harbin-gov", hub.addr);
    harbin.wait_connected().await;

    // The one place is taken: the next unit is refused with QUIC's
    // stateless refusal and comes back at a random moment of the window.
    // The first refusal may be a hub stopping or starting: it tries again
    // after a second; refused again, it comes back at a random moment of
    // the window.
    let mut daqing = net.start_agent("daqing-gov", hub.addr);
    let turned_away = |s: &LinkState| matches!(s, LinkState::Disconnected { error, .. } if *error == LinkError::HubTurnedAway);
    let first = daqing.wait("daqing-gov turned away", turned_away).await;
    let (least, most) = gongwen_agent::rules::backoff::TURNED_AWAY;
    assert!(
        matches!(first, LinkState::Disconnected { retry_in, .. } if retry_in >= Duration::from_secs(1) && retry_in < least),
        "{first:?}"
    );
    let again = daqing
        .wait("daqing-gov turned away again", |s| {
            turned_away(s)
                && matches!(s, LinkState::Disconnected { retry_in, .. } if *retry_in >= least)
        })
        .await;
    let LinkState::Disconnected { retry_in, .. } = again else {
        unreachable!()
    };
    assert!(
        retry_in <= most,
        "told to retry in {retry_in:?}, outside {least:?}..{most:?}"
    );
    // Refused before TLS: a stranger now meets the same refusal, not the
    // TLS alert it met while there was room.
    let mut stranger = RunningAgent::start(other.agent_config("harbin-gov", hub.addr));
    assert_eq!(stranger.wait_error().await, LinkError::HubTurnedAway);
    stranger.stop().await;

    let (status, text) = prom::get(metrics, "/metrics").await;
    assert_eq!(status, 200, "{text}");
    let full = metric(&text, "gongwen_connections_turned_away_total{why=\"full\"}");
    assert!(full.is_some_and(|n| n >= 2.0), "{text}");
    assert_eq!(
        metric(&text, "gongwen_connections_max"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "gongwen_units_connected"),
        Some(1.0),
        "{text}"
    );
    // The unit inside was never disturbed.
    assert!(matches!(*harbin.link.borrow(), LinkState::Connected { .. }));
    daqing.stop().await;
    harbin.stop().await;
    hub.stop().await;
}

/// Units enrolled as `gongwen-certs enroll` does it (certificate, X25519
/// key and binding, groups), without the bundles' archives: ids
/// `county-00000`… of which the first `in_group` are in `counties`.
fn enroll_counties(net: &Net, units: usize, in_group: usize) -> Vec<(NodeId, Vec<u8>)> {
    let now = OffsetDateTime::now_utc();
    let mut ca = net.ca();
    ca.defer_saves();
    let mut keys = Vec::new();
    for i in 0..units {
        let id = NodeId::parse(&format!("county-{i:05}")).unwrap();
        let issued = ca
            .issue(
                &IssueRequest {
                    id: id.clone(),
                    role: Role::Node,
                    name: Some(format!("第{i}县人民政府")),
                    dns: Vec::new(),
                    ips: Vec::new(),
                    validity: Validity::days_from(now, 30),
                    renew: false,
                },
                now,
            )
            .unwrap();
        if i < in_group {
            ca.set_groups(&id, vec!["counties".into()]).unwrap();
        }
        let (enc, _) = ca.make_encryption_key(&id, &issued, now).unwrap();
        // The second member runs a real agent (the second in id order, so
        // its 份号 is not the first copy's): its files as a bundle has them.
        if i == 1 {
            let dir = net.path().join(id.as_str());
            ca.write_issued(&dir, &id, &issued).unwrap();
            keys.push((id.clone(), enc.secret_bytes()));
        }
    }
    ca.flush().unwrap();
    let (listed, _) = ca.write_directory(now).unwrap();
    assert_eq!(listed, units);
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_with_a_20000_unit_directory_starts_and_a_group_of_5000_is_sent_to() {
    let net = Net::new();
    assert_eq!(
        net.suite(),
        gongwen_common::suite::Suite::Standard,
        "this test enrolls X25519 keys"
    );
    net.issue("prov-gov", Role::Node);
    let keys = enroll_counties(&net, 20_000, 5_000);
    let directory = net.path().join("ca").join("directory.gwd");
    let size = std::fs::metadata(&directory).unwrap().len();
    assert!(size > 4 << 20, "the directory is only {size} bytes");

    let mut config = net.hub_config("127.0.0.1:0".parse().unwrap());
    config.tls.directory = Some(directory);
    let hub = net
        .start_hub_config(config, gongwen_common::clock::system())
        .await;
    let rows = hub
        .wait_nodes("the 20,000 enrolled units", |rows| rows.len() >= 20_000)
        .await;
    assert!(rows.iter().any(|r| r.id == "county-19999" && r.can_receive));

    // One member runs an agent, with the key it was enrolled with; the
    // copies are numbered (in the tree form by their leaf's place).
    let (member, secret) = &keys[0];
    let key_file = net.path().join(member.as_str()).join("enc.key");
    std::fs::write(&key_file, secret).unwrap();
    let mut county = RunningAgent::start(net.agent_config_with(
        member.as_str(),
        hub.addr,
        &format!("encryption_key = \"{}\"", key_file.display()),
    ));
    county.wait_connected().await;

    let mut prov = net.start_agent("prov-gov", hub.addr);
    prov.wait_connected().await;
    net.sidecar(
        "prov-gov",
        "counties",
        "关于全省县级单位的通知.txt",
        "copy_no = true\n",
    );
    net.drop_file(
        "prov-gov",
        "counties",
        "关于全省县级单位的通知.txt",
        "通知全文".as_bytes(),
    );
    let st = wait_status(
        &net.root("prov-gov"),
        "the notice accepted for 5,000",
        |st| st.len() == 1 && st[0].stage == "sent",
    )
    .await;
    assert_eq!(st[0].recipients.len(), 5_000, "{:?}", st[0].left_out);
    assert!(st[0].left_out.is_empty(), "{:?}", st[0].left_out);
    let docs = wait_inbox(&net.root(member.as_str()), "prov-gov", 1).await;
    assert_eq!(docs.len(), 1);
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(docs[0].join("metadata.json")).unwrap()).unwrap();
    assert_eq!(m["copy_no"], "000002", "{m:#}");

    // The notice went in the tree form: the member holds its own key and
    // a path of 13 hashes, not 5,000 keys; its evidence checks with
    // openssl alone, the path included.
    let doc: gongwen_common::DocId = st[0].doc_id.parse().unwrap();
    let evidence = net.path().join("evidence-county");
    gongwen_tests::ask_agent(
        &net.root(member.as_str()),
        &gongwen_agent::front::control::Request::Evidence {
            doc,
            out: evidence.clone(),
        },
    )
    .await
    .unwrap();
    let paths = std::fs::read_dir(&evidence)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("key.path."))
        .count();
    assert_eq!(paths, 13, "a path of ⌈log₂ 5000⌉ hashes");
    let signed = std::fs::metadata(evidence.join("document.signed"))
        .unwrap()
        .len();
    assert!(signed < 4_000, "the signed header is {signed} bytes");
    if gongwen_tests::tools::have_openssl(false) {
        let run = |dir: &std::path::Path| {
            std::process::Command::new("sh")
                .arg(dir.join("verify.sh"))
                .output()
                .unwrap()
        };
        let out = run(&evidence);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success() && text.contains("OK    key"), "{text}");
        // Another unit's key in its place: not one the sender signed.
        let leaf = std::fs::read(evidence.join("key.leaf")).unwrap();
        let mut other = leaf.clone();
        let last = other.len() - 1;
        other[last] ^= 1;
        std::fs::write(evidence.join("key.leaf"), &other).unwrap();
        let out = run(&evidence);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            !out.status.success() && text.contains("FAIL  key"),
            "{text}"
        );
    }

    // The directory the sender's agent keeps lists every unit, with names.
    let list = std::fs::read_to_string(
        net.root("prov-gov")
            .join("outbox")
            .join(gongwen_agent::unit::directory::DIRECTORY_FILE),
    )
    .unwrap();
    assert!(
        list.contains("county-19999\t第19999县人民政府"),
        "{}",
        &list[..400]
    );
    county.stop().await;
    prov.stop().await;
    hub.stop().await;
}

/// A recipient's proof that the sender signed its key, checked with
/// openssl alone (the shell function `verify.sh` uses): every leaf of
/// trees of several sizes leads to the root our code computed, on both
/// suites' digests; a changed key, place or path does not.
#[test]
fn a_key_proof_checks_out_with_openssl_alone_and_a_changed_list_does_not() {
    use gongwen_common::keytree::{KeyTree, VERIFY_SH_FUNCTION, leaf_hash};
    use gongwen_common::suite::Suite;
    if !gongwen_tests::tools::have_openssl(true) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (suite, digest) in [(Suite::Standard, "sha256"), (Suite::Gm, "sm3")] {
        for n in [1usize, 2, 3, 5, 8, 13, 37] {
            let leaves: Vec<Vec<u8>> = (0..n)
                .map(|i| format!("county-{i:05} wrapped key").into_bytes())
                .collect();
            let tree =
                KeyTree::new(suite, leaves.iter().map(|l| leaf_hash(suite, l)).collect()).unwrap();
            for i in [0, n / 2, n - 1] {
                let leaf = dir.path().join("leaf");
                std::fs::write(&leaf, &leaves[i]).unwrap();
                let mut args = vec![
                    digest.to_owned(),
                    leaf.display().to_string(),
                    i.to_string(),
                    n.to_string(),
                ];
                for (k, h) in tree.path(i).unwrap().iter().enumerate() {
                    let p = dir.path().join(format!("path{k}"));
                    std::fs::write(&p, h).unwrap();
                    args.push(p.display().to_string());
                }
                let run = |args: &[String]| {
                    std::process::Command::new("sh")
                        .arg("-c")
                        .arg(format!("{VERIFY_SH_FUNCTION}\nkeytree_root \"$@\""))
                        .arg("keytree")
                        .args(args)
                        .output()
                        .unwrap()
                };
                let out = run(&args);
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                assert_eq!(out.stdout, tree.root(), "{digest}: leaf {i} of {n}");
                // Another unit's key in this place leads elsewhere.
                if n > 1 {
                    std::fs::write(&leaf, &leaves[(i + 1) % n]).unwrap();
                    assert_ne!(run(&args).stdout, tree.root(), "{digest}: leaf {i} of {n}");
                }
            }
        }
    }
}
