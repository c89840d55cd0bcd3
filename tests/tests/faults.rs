//! Fault tolerance with real processes: the hub and agents are killed with
//! SIGKILL at random moments while documents flow, and afterwards every
//! document is in every recipient's inbox exactly once, byte-identical,
//! with every `delivered` receipt back at its sender.
//!
//! `GONGWEN_CRASH_DOCS` sets the number of documents (default 1000) and
//! `GONGWEN_FAULT_SEED` replays a schedule (the seed is printed).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use gongwen_common::Role;
use gongwen_common::receipt::ReceiptKind;
use gongwen_tests::{AgentProcess, HubProcess, Net, Rng, agent_status};

/// How long the system may take to settle after the last fault.
const SETTLE: Duration = Duration::from_secs(240);

fn crash_docs() -> usize {
    std::env::var("GONGWEN_CRASH_DOCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

/// Contents of every document `root` holds from `sender`, with how many
/// inbox copies each has.
fn inbox_bodies(root: &Path, sender: &str) -> BTreeMap<Vec<u8>, usize> {
    let mut out = BTreeMap::new();
    let Ok(docs) = std::fs::read_dir(root.join("inbox").join(sender)) else {
        return out;
    };
    for doc in docs.flatten() {
        let Ok(files) = std::fs::read_dir(doc.path()) else {
            continue;
        };
        for f in files.flatten() {
            if f.file_name() == "metadata.json" {
                continue;
            }
            if let Ok(bytes) = std::fs::read(f.path()) {
                *out.entry(bytes).or_insert(0) += 1;
            }
        }
    }
    out
}

/// `delivered` receipts the sender at `root` holds.
async fn receipts_back(root: &Path) -> usize {
    // The agent may be restarting (no control socket yet): count nothing.
    gongwen_tests::try_agent_status(root)
        .await
        .unwrap_or_default()
        .iter()
        .flat_map(|d| d.recipients.iter())
        .filter(|r| r.receipts.contains(&ReceiptKind::Delivered))
        .count()
}

fn body(sender: &str, to: &str, i: usize) -> Vec<u8> {
    let mut b = format!("{sender} -> {to} #{i}\n").into_bytes();
    // Enough to span several QUIC packets; distinct per document.
    b.extend((0..3000).map(|k| ((i * 31 + k * 7) % 251) as u8));
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_survive_repeated_sigkills_of_the_hub_and_agents_exactly_once() {
    let n = crash_docs();
    let net = Net::new();
    for id in ["prov-gov", "harbin-gov", "daqing-gov"] {
        net.issue(id, Role::Node);
    }
    let mut rng = Rng::from_env();
    let mut hub = HubProcess::start(&net, "127.0.0.1:0".parse().unwrap()).await;
    let addr = hub.addr;
    // prov-gov sends to the group `cities` (harbin-gov, daqing-gov) and is
    // killed as a sender; daqing-gov is killed as a recipient; harbin-gov
    // both sends and receives and is left running.
    let mut prov = AgentProcess::start(&net, "prov-gov", addr);
    let _harbin = AgentProcess::start(&net, "harbin-gov", addr);
    let mut daqing = AgentProcess::start(&net, "daqing-gov", addr);
    hub.wait_units(3).await;

    let (mut from_prov, mut from_harbin) = (Vec::new(), Vec::new());
    let rounds = 12;
    let (mut hub_kills, mut sender_kills, mut recipient_kills) = (0, 0, 0);
    let mut dropped = 0;
    for round in 0..rounds {
        // A batch of drops, then faults while they flow.
        let batch_end = n * (round + 1) / rounds;
        while dropped < batch_end {
            let i = dropped;
            if i % 5 < 3 {
                let b = body("prov-gov", "cities", i);
                net.drop_file("prov-gov", "cities", &format!("{i:05}.txt"), &b);
                from_prov.push(b);
            } else {
                let b = body("harbin-gov", "daqing-gov", i);
                net.drop_file("harbin-gov", "daqing-gov", &format!("{i:05}.txt"), &b);
                from_harbin.push(b);
            }
            dropped += 1;
        }
        tokio::time::sleep(Duration::from_millis(rng.range(150, 900))).await;
        if (1..=10).contains(&round) {
            hub.kill9();
            hub_kills += 1;
            tokio::time::sleep(Duration::from_millis(rng.range(0, 300))).await;
            hub = HubProcess::start(&net, addr).await;
        }
        if round % 3 == 2 && sender_kills < 3 {
            prov.kill9();
            sender_kills += 1;
            prov = AgentProcess::start(&net, "prov-gov", addr);
        }
        if round % 3 == 0 && round > 0 && recipient_kills < 3 {
            daqing.kill9();
            recipient_kills += 1;
            tokio::time::sleep(Duration::from_millis(rng.range(0, 300))).await;
            daqing = AgentProcess::start(&net, "daqing-gov", addr);
        }
    }
    eprintln!(
        "{n} documents; SIGKILLs: hub {hub_kills}, sending agent {sender_kills}, receiving agent {recipient_kills}"
    );
    assert!(hub_kills >= 10 && sender_kills >= 3 && recipient_kills >= 3);

    // Settle: everything arrives, and every receipt comes back.
    let expect: Vec<(&str, &str, &Vec<Vec<u8>>)> = vec![
        ("harbin-gov", "prov-gov", &from_prov),
        ("daqing-gov", "prov-gov", &from_prov),
        ("daqing-gov", "harbin-gov", &from_harbin),
    ];
    let receipts_wanted = [
        ("prov-gov", from_prov.len() * 2),
        ("harbin-gov", from_harbin.len()),
    ];
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let inboxes_full = expect.iter().all(|(to, from, bodies)| {
            inbox_bodies(&net.root(to), from).values().sum::<usize>() >= bodies.len()
        });
        let mut receipts_full = inboxes_full;
        if inboxes_full {
            for (sender, want) in receipts_wanted {
                receipts_full &= receipts_back(&net.root(sender)).await >= want;
            }
        }
        if receipts_full {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            let mut state = String::new();
            for (to, from, bodies) in &expect {
                let got: usize = inbox_bodies(&net.root(to), from).values().sum();
                state += &format!("\n  {to} from {from}: {got} of {}", bodies.len());
            }
            for (sender, want) in receipts_wanted {
                let got = receipts_back(&net.root(sender)).await;
                state += &format!("\n  receipts at {sender}: {got} of {want}");
            }
            panic!("not settled within {SETTLE:?}:{state}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Exactly once, byte-identical.
    let (mut lost, mut doubled) = (0, 0);
    for (to, from, bodies) in &expect {
        let got = inbox_bodies(&net.root(to), from);
        for b in bodies.iter() {
            match got.get(b) {
                None => lost += 1,
                Some(1) => {}
                Some(_) => doubled += 1,
            }
        }
        let unexpected = got.keys().filter(|k| !bodies.contains(k)).count();
        assert_eq!(
            unexpected, 0,
            "{to} holds documents from {from} nobody sent"
        );
    }
    eprintln!("lost {lost}, doubled {doubled}");
    assert_eq!((lost, doubled), (0, 0), "lost and doubled documents");
    for (sender, want) in receipts_wanted {
        assert_eq!(receipts_back(&net.root(sender)).await, want);
        let failed = std::fs::read_dir(net.root(sender).join("failed"))
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(failed, 0, "{sender} gave up on documents");
    }
}

/// A small tmpfs mounted over `dir` for the length of a test; `None` (and
/// a message) where mounting is not permitted.
struct SmallDisk {
    dir: std::path::PathBuf,
}

impl SmallDisk {
    fn mount(dir: &Path, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        if !gongwen_tests::tools::require("mounting a small tmpfs (needs root)", "mount", ok) {
            return None;
        }
        Some(SmallDisk {
            dir: dir.to_owned(),
        })
    }

    /// Fill the disk up with a file; returns it (remove it to free space).
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let filler = self.dir.join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 64 << 10];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .status();
    }
}

async fn sender_stage(root: &Path, name: &str) -> Option<String> {
    agent_status(root)
        .await
        .into_iter()
        .find(|d| d.title == name)
        .map(|d| d.stage)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_at_the_hub_refuses_uploads_retryably_and_sending_resumes_when_space_is_freed()
{
    let net = Net::new();
    let Some(disk) = SmallDisk::mount(&net.path().join("hub-data"), "24m") else {
        return;
    };
    for id in ["prov-gov", "harbin-gov"] {
        net.issue(id, Role::Node);
    }
    let hub = net.start_hub().await;
    let prov = net.start_agent("prov-gov", hub.addr);
    let _harbin = net.start_agent("harbin-gov", hub.addr);
    hub.wait_ready(&["prov-gov", "harbin-gov"]).await;
    // Something already stored before the disk fills.
    net.drop_file(
        "prov-gov",
        "harbin-gov",
        "before.txt",
        b"stored before the disk filled",
    );
    gongwen_tests::wait_all_delivered(&net.root("prov-gov"), 1).await;

    let filler = disk.fill();
    let big: Vec<u8> = (0..2_000_000u32).map(|i| (i % 253) as u8).collect();
    net.drop_file("prov-gov", "harbin-gov", "after.bin", &big);
    // The hub refuses (it cannot spool); the sender keeps the document.
    let log = gongwen_tests::wait_until("the refusal in the sender's status", || {
        std::fs::read_dir(net.root("prov-gov").join("state").join("spool"))
            .ok()
            .map(|d| d.count())
            .filter(|n| *n > 0)
    })
    .await;
    assert_eq!(log, 1, "the document waits in the sender's spool");
    // Two rounds of the uploader end after the claim (its wake-up starts
    // the second at once if one was under way): one of them offered the
    // document, and the hub refused it.
    let rounds = prov.parts.counters().send_rounds();
    gongwen_tests::wait_until("the uploader to offer it and be refused", || {
        (prov.parts.counters().send_rounds() >= rounds + 2).then_some(())
    })
    .await;
    assert_eq!(
        sender_stage(&net.root("prov-gov"), "after")
            .await
            .as_deref(),
        Some("sending"),
        "still the sender's, not failed"
    );
    assert_eq!(
        std::fs::read_dir(net.root("prov-gov").join("failed"))
            .map(|d| d.count())
            .unwrap_or(0),
        0
    );

    std::fs::remove_file(filler).unwrap();
    let docs = gongwen_tests::wait_inbox(&net.root("harbin-gov"), "prov-gov", 2).await;
    let mut bodies: Vec<Vec<u8>> = docs
        .iter()
        .flat_map(|d| std::fs::read_dir(d).unwrap().flatten())
        .filter(|f| f.file_name() != "metadata.json")
        .map(|f| std::fs::read(f.path()).unwrap())
        .collect();
    bodies.sort();
    let mut want = vec![b"stored before the disk filled".to_vec(), big];
    want.sort();
    assert_eq!(bodies, want);
    gongwen_tests::wait_all_delivered(&net.root("prov-gov"), 2).await;
    // Nothing stored was damaged: the audit chain still verifies.
    let verdict =
        gongwen_hub::store::audit::verify(&net.path().join("hub-data").join("audit.log")).unwrap();
    assert_eq!(verdict.first_broken, None, "{verdict:?}");
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_at_the_recipient_delays_delivery_until_space_is_freed() {
    let net = Net::new();
    let Some(disk) = SmallDisk::mount(&net.root("harbin-gov"), "24m") else {
        return;
    };
    for id in ["prov-gov", "harbin-gov"] {
        net.issue(id, Role::Node);
    }
    let hub = net.start_hub().await;
    let _prov = net.start_agent("prov-gov", hub.addr);
    let harbin = net.start_agent("harbin-gov", hub.addr);
    hub.wait_ready(&["prov-gov", "harbin-gov"]).await;
    net.drop_file("prov-gov", "harbin-gov", "before.txt", b"first");
    gongwen_tests::wait_inbox(&net.root("harbin-gov"), "prov-gov", 1).await;

    let filler = disk.fill();
    let big: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    net.drop_file("prov-gov", "harbin-gov", "after.bin", &big);
    // Accepted by the hub, but the recipient cannot store it yet.
    gongwen_tests::wait_until("accepted by the hub", || {
        (std::fs::read_dir(net.root("prov-gov").join("sent"))
            .ok()?
            .count()
            == 2)
            .then_some(())
    })
    .await;
    // The hub offered it and the recipient said it cannot store it now.
    gongwen_tests::wait_until("the recipient to refuse a delivery", || {
        (harbin.parts.counters().deliveries_refused() >= 1).then_some(())
    })
    .await;
    assert_eq!(
        gongwen_tests::inbox_docs(&net.root("harbin-gov"), "prov-gov").len(),
        1
    );

    std::fs::remove_file(filler).unwrap();
    let docs = gongwen_tests::wait_inbox(&net.root("harbin-gov"), "prov-gov", 2).await;
    let got = docs
        .iter()
        .find_map(|d| std::fs::read(d.join("after.bin")).ok())
        .unwrap();
    assert_eq!(got, big);
    gongwen_tests::wait_all_delivered(&net.root("prov-gov"), 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_reconnect_by_themselves_after_a_cut_longer_than_the_idle_timeout() {
    use gongwen_agent::LinkState;
    use gongwen_tests::proxy::{Faults, LossyProxy};
    let net = Net::new();
    let units = ["prov-gov", "harbin-gov"];
    for id in units {
        net.issue(id, Role::Node);
    }
    let hub = net.start_hub().await;
    let clean = Faults {
        drop: 0,
        duplicate: 0,
        delay: 0,
    };
    let proxy = LossyProxy::start(hub.addr, clean, Rng::from_env()).await;
    let mut agents: Vec<_> = units
        .iter()
        .map(|id| net.start_agent(id, proxy.addr))
        .collect();
    hub.wait_ready(&units).await;
    net.drop_file("prov-gov", "harbin-gov", "before.txt", b"before the cut");
    gongwen_tests::wait_inbox(&net.root("harbin-gov"), "prov-gov", 1).await;

    // The link goes dark for longer than a connection can stay idle: both
    // ends give the connection up. A document dropped meanwhile waits.
    proxy.cut(true);
    net.drop_file(
        "prov-gov",
        "harbin-gov",
        "during.txt",
        b"dropped during the cut",
    );
    let idle = gongwen_common::tls::IDLE_TIMEOUT;
    for a in &mut agents {
        gongwen_tests::wait_link_within(
            &mut a.link,
            "disconnected by the idle timeout",
            idle + Duration::from_secs(20),
            |s| matches!(s, LinkState::Disconnected { .. }),
        )
        .await;
    }
    proxy.cut(false);
    // Nobody restarts anything: the agents come back by themselves.
    for a in &mut agents {
        a.wait_connected().await;
    }
    let docs = gongwen_tests::wait_inbox(&net.root("harbin-gov"), "prov-gov", 2).await;
    let bodies: Vec<Vec<u8>> = docs
        .iter()
        .flat_map(|d| {
            ["before.txt", "during.txt"]
                .iter()
                .filter_map(|n| std::fs::read(d.join(n)).ok())
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        bodies.contains(&b"dropped during the cut".to_vec()),
        "{bodies:?}"
    );
    gongwen_tests::wait_all_delivered(&net.root("prov-gov"), 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_cross_a_lossy_reordering_link_that_is_cut_intact_and_once_each() {
    use gongwen_tests::proxy::{Faults, LossyProxy};
    let net = Net::new();
    for id in ["prov-gov", "harbin-gov", "daqing-gov"] {
        net.issue(id, Role::Node);
    }
    let hub = net.start_hub().await;
    let faults = Faults {
        drop: 10,
        duplicate: 3,
        delay: 5,
    };
    let proxy = LossyProxy::start(hub.addr, faults, Rng::from_env()).await;
    let _agents: Vec<_> = ["prov-gov", "harbin-gov", "daqing-gov"]
        .iter()
        .map(|id| net.start_agent(id, proxy.addr))
        .collect();
    hub.wait_ready(&["prov-gov", "harbin-gov", "daqing-gov"])
        .await;

    let n = 60;
    let mut sent = Vec::new();
    for i in 0..n {
        let mut b = body("prov-gov", "cities", i);
        if i == 7 {
            // One document of several hundred packets.
            b.extend((0..1_000_000u32).map(|k| (k % 249) as u8));
        }
        net.drop_file("prov-gov", "cities", &format!("{i:03}.txt"), &b);
        sent.push(b);
        if i == n / 2 {
            // The link goes dark mid-stream, then comes back.
            proxy.cut(true);
            tokio::time::sleep(Duration::from_secs(2)).await;
            proxy.cut(false);
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let inboxes = ["harbin-gov", "daqing-gov"].iter().all(|to| {
            inbox_bodies(&net.root(to), "prov-gov")
                .values()
                .sum::<usize>()
                >= n
        });
        if inboxes && receipts_back(&net.root("prov-gov")).await >= 2 * n {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not settled over the lossy link: harbin {}, daqing {}, receipts {}",
            inbox_bodies(&net.root("harbin-gov"), "prov-gov")
                .values()
                .sum::<usize>(),
            inbox_bodies(&net.root("daqing-gov"), "prov-gov")
                .values()
                .sum::<usize>(),
            receipts_back(&net.root("prov-gov")).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for to in ["harbin-gov", "daqing-gov"] {
        let got = inbox_bodies(&net.root(to), "prov-gov");
        assert_eq!(got.len(), n, "{to}: distinct documents");
        for b in &sent {
            assert_eq!(
                got.get(b),
                Some(&1),
                "{to}: each document exactly once, byte-identical"
            );
        }
    }
    let c = &proxy.counts;
    let dropped = c.dropped.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "relay: {} relayed, {dropped} dropped, {} duplicated, {} delayed",
        c.relayed.load(std::sync::atomic::Ordering::Relaxed),
        c.duplicated.load(std::sync::atomic::Ordering::Relaxed),
        c.delayed.load(std::sync::atomic::Ordering::Relaxed)
    );
    assert!(
        dropped > 0,
        "the relay lost nothing: the test tested nothing"
    );
}

/// Wait until harbin-gov holds every one of `sent` from prov-gov exactly
/// once and prov-gov holds a delivered receipt for each.
async fn settled_exactly_once(net: &Net, sent: &[Vec<u8>], after: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let got = inbox_bodies(&net.root("harbin-gov"), "prov-gov");
        let receipts = receipts_back(&net.root("prov-gov")).await;
        if got.values().sum::<usize>() >= sent.len() && receipts >= sent.len() {
            for b in sent {
                assert_eq!(
                    got.get(b),
                    Some(&1),
                    "after {after}: a document not exactly once"
                );
            }
            assert_eq!(got.len(), sent.len(), "after {after}: unexpected documents");
            assert_eq!(receipts, sent.len(), "after {after}: receipts");
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "after {after}: {} of {} documents, {receipts} receipts",
            got.values().sum::<usize>(),
            sent.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_each_sharp_moment_loses_and_doubles_nothing() {
    let net = Net::new();
    for id in ["prov-gov", "harbin-gov"] {
        net.issue(id, Role::Node);
    }
    let mut hub = HubProcess::start(&net, "127.0.0.1:0".parse().unwrap()).await;
    let addr = hub.addr;
    let mut prov = AgentProcess::start(&net, "prov-gov", addr);
    let mut harbin = AgentProcess::start(&net, "harbin-gov", addr);
    hub.wait_units(2).await;
    // Several 256 KiB chunks, so a crash can land mid-delivery.
    let doc = |tag: &str| -> Vec<u8> {
        let mut b = tag.as_bytes().to_vec();
        b.extend((0..2_000_000u32).map(|k| (k % 241) as u8));
        b
    };
    let mut sent = Vec::new();
    for point in [
        "hub-upload-written",      // received, not yet synced
        "hub-upload-synced",       // synced, not yet recorded
        "hub-accepted-committed",  // recorded, `accepted` not yet sent
        "hub-deliver-mid-content", // halfway through a delivery
        "hub-receipt-recorded",    // delivered receipt recorded, not forwarded
    ] {
        hub.kill9();
        hub = HubProcess::start_armed(&net, addr, Some(point)).await;
        let b = doc(point);
        net.drop_file("prov-gov", "harbin-gov", &format!("{point}.bin"), &b);
        sent.push(b);
        hub.wait_crash(point).await;
        hub = HubProcess::start(&net, addr).await;
        settled_exactly_once(&net, &sent, point).await;
    }
    // Everyone has everything, so the hub keeps no content, including the
    // file the last crash left between recording the receipt and removing it.
    let spool = hub.data_dir.join("spool");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let kept: Vec<_> = std::fs::read_dir(&spool)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "ct"))
            .map(|e| e.file_name())
            .collect();
        if kept.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the hub still keeps delivered content: {kept:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (point, who) in [
        ("agent-sent-accepted", "prov-gov"),   // accepted, not yet filed
        ("agent-inbox-written", "harbin-gov"), // inbox copy written, not recorded
    ] {
        let agent = if who == "prov-gov" {
            &mut prov
        } else {
            &mut harbin
        };
        agent.kill9();
        *agent = AgentProcess::start_armed(&net, who, addr, Some(point));
        let b = doc(point);
        net.drop_file("prov-gov", "harbin-gov", &format!("{point}.bin"), &b);
        sent.push(b);
        agent.wait_crash(point).await;
        *agent = AgentProcess::start(&net, who, addr);
        settled_exactly_once(&net, &sent, point).await;
    }
    let filed = std::fs::read_dir(net.root("prov-gov").join("sent"))
        .unwrap()
        .count();
    assert_eq!(filed, sent.len(), "each document filed once under sent/");
}

async fn urge_count(root: &Path, title: &str) -> Option<u32> {
    let v = gongwen_tests::ask_agent(
        root,
        &gongwen_agent::front::control::Request::Inbox { pending: false },
    )
    .await
    .ok()?;
    let rows: Vec<gongwen_agent::incoming::clerk::InboxRow> = serde_json::from_value(v).ok()?;
    rows.into_iter()
        .find(|r| r.title == title)
        .map(|r| r.urge_count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_during_an_escalation_step_runs_it_exactly_once() {
    let net = Net::new();
    for id in ["prov-gov", "harbin-gov"] {
        net.issue(id, Role::Node);
    }
    let mut hub = HubProcess::start(&net, "127.0.0.1:0".parse().unwrap()).await;
    let addr = hub.addr;
    let _prov = net.start_agent("prov-gov", addr);
    let harbin = net.root("harbin-gov");
    let _harbin = net.start_agent("harbin-gov", addr);
    hub.wait_units(2).await;
    for point in [
        "hub-escalation-before-commit", // the urge step computed, not recorded
        "hub-escalation-committed",     // recorded, the notice not yet pushed
    ] {
        hub.kill9();
        hub = HubProcess::start_armed(&net, addr, Some(point)).await;
        // Due in two seconds; harbin-gov never signs for it.
        net.sidecar(
            "prov-gov",
            "harbin-gov",
            &format!("{point}.txt"),
            "deadline = \"2s\"\n",
        );
        net.drop_file(
            "prov-gov",
            "harbin-gov",
            &format!("{point}.txt"),
            b"sign for this",
        );
        hub.wait_crash(point).await;
        hub = HubProcess::start(&net, addr).await;
        let deadline = tokio::time::Instant::now() + gongwen_tests::WAIT;
        while urge_count(&harbin, point).await != Some(1) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{point}: urge count {:?}\nhub log:\n{}",
                urge_count(&harbin, point).await,
                std::fs::read_to_string(&hub.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Another restart does not run the step again.
        hub.kill9();
        hub = HubProcess::start(&net, addr).await;
        hub.wait_units(2).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            urge_count(&harbin, point).await,
            Some(1),
            "{point}: urged twice"
        );
    }
}
