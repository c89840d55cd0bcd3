//! Two hubs, one province: both serve agents at once on one PostgreSQL
//! database (a throwaway cluster started by the test). Real hubs, real
//! agents, real QUIC, real files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use gongwen_common::Role;
use gongwen_common::clock::ManualClock;
use gongwen_hub::ops::control::Request as HubRequest;
use gongwen_tests::{
    HubProcess, Net, RunningAgent, RunningHub, ask_hub, bin, count_entries, pg, wait_all_delivered,
    wait_delivered_within, wait_inbox, wait_until, wait_within,
};
use time::OffsetDateTime;

const HOUR: Duration = Duration::from_secs(3600);

/// The `[store]` table of a hub on `cluster`.
fn shared(cluster: &pg::Cluster) -> String {
    format!(
        "[store]\npostgres = \"{}\"\npoll = \"1s\"\nlease = \"3s\"\n",
        cluster.conn()
    )
}

async fn start_hub(
    net: &Net,
    cluster: &pg::Cluster,
    name: &str,
    clock: Arc<dyn gongwen_common::clock::Clock>,
) -> RunningHub {
    let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let config = net.hub_config_as(name, listen, &shared(cluster));
    net.start_hub_config(config, clock).await
}

fn agent(net: &Net, id: &str, hubs: &[SocketAddr]) -> RunningAgent {
    RunningAgent::start(net.agent_config_hubs(id, hubs, ""))
}

/// `gongwen-hub audit verify` on a hub's config: its output.
fn audit_verify(net: &Net, name: &str) -> String {
    let out = std::process::Command::new(bin("gongwen-hub"))
        .args(["audit", "verify", "--config"])
        .arg(net.path().join(format!("{name}.toml")))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "audit verify failed: {text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_uploaded_at_one_hub_is_delivered_by_the_other() {
    if !pg::available() {
        return;
    }
    let cluster = pg::Cluster::start();
    let net = Net::new();
    for id in ["prov-gov", "harbin-gov", "daqing-gov"] {
        net.issue(id, Role::Node);
    }
    let system = gongwen_common::clock::system();
    let a = start_hub(&net, &cluster, "hub-a", system.clone()).await;
    let b = start_hub(&net, &cluster, "hub-b", system.clone()).await;
    let _prov = agent(&net, "prov-gov", &[a.addr]);
    let _harbin = agent(&net, "harbin-gov", &[b.addr]);
    let mut daqing = agent(&net, "daqing-gov", &[a.addr, b.addr]);

    // Hub A shows every unit, and which hub each is on.
    let on = |port: u16| format!(":{port}");
    let rows = a
        .wait_nodes("every unit connected, on its hub", |rows| {
            ["prov-gov", "harbin-gov", "daqing-gov"].iter().all(|id| {
                rows.iter()
                    .any(|r| r.id == *id && r.connected && r.can_receive && r.hub.is_some())
            })
        })
        .await;
    let hub_of = |id: &str| {
        rows.iter()
            .find(|r| r.id == id)
            .and_then(|r| r.hub.clone())
            .unwrap()
    };
    assert!(hub_of("prov-gov").ends_with(&on(a.addr.port())), "{rows:?}");
    assert!(
        hub_of("harbin-gov").ends_with(&on(b.addr.port())),
        "{rows:?}"
    );
    assert!(
        hub_of("daqing-gov").ends_with(&on(a.addr.port())),
        "{rows:?}"
    );

    // Uploaded at A; harbin-gov (on B) gets it from B.
    let body = "关于做好冬季安全生产工作的通知\n".repeat(500).into_bytes();
    net.drop_file("prov-gov", "cities", "冬季安全生产.txt", &body);
    for member in ["harbin-gov", "daqing-gov"] {
        let docs = wait_inbox(&net.root(member), "prov-gov", 1).await;
        let got = std::fs::read(docs[0].join("冬季安全生产.txt")).unwrap();
        assert!(got == body, "{member} got different bytes");
    }
    // Receipts from both hubs reach the sender at A, once each.
    let st = wait_all_delivered(&net.root("prov-gov"), 1).await;
    assert_eq!(st[0].recipients.len(), 2);

    // Hub A goes away: daqing-gov moves to B at once and keeps receiving.
    a.stop().await;
    let state = daqing
        .wait(
            "daqing-gov on hub B",
            |s| matches!(s, gongwen_agent::LinkState::Connected { addr, .. } if *addr == b.addr),
        )
        .await;
    drop(state);
    net.drop_file(
        "harbin-gov",
        "daqing-gov",
        "回复.txt",
        b"harbin to daqing via B",
    );
    let docs = wait_inbox(&net.root("daqing-gov"), "harbin-gov", 1).await;
    assert_eq!(
        std::fs::read(docs[0].join("回复.txt")).unwrap(),
        b"harbin to daqing via B"
    );
    wait_all_delivered(&net.root("harbin-gov"), 1).await;

    // One audit chain: two accepts and three delivered receipts.
    let text = audit_verify(&net, "hub-b");
    assert!(text.contains("intact: 5 entries"), "{text}");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hubs_on_one_clock_run_each_escalation_step_once() {
    if !pg::available() {
        return;
    }
    let cluster = pg::Cluster::start();
    let net = Net::new();
    net.issue("prov-gov", Role::Node);
    net.issue("harbin-gov", Role::Node);
    net.issue("prov-supervision", Role::Supervisor);
    let clock = ManualClock::new(OffsetDateTime::now_utc());
    let a = start_hub(&net, &cluster, "hub-a", Arc::new(clock.clone())).await;
    let b = start_hub(&net, &cluster, "hub-b", Arc::new(clock.clone())).await;
    let _prov = agent(&net, "prov-gov", &[a.addr]);
    let _harbin = agent(&net, "harbin-gov", &[b.addr]);
    let _sup = agent(&net, "prov-supervision", &[a.addr]);
    a.wait_nodes("all three connected", |rows| {
        ["prov-gov", "harbin-gov", "prov-supervision"]
            .iter()
            .all(|id| {
                rows.iter()
                    .any(|r| r.id == *id && r.connected && r.can_receive)
            })
    })
    .await;

    net.sidecar(
        "prov-gov",
        "harbin-gov",
        "督办测试.txt",
        "urgency = \"urgent\"\ndoc_number = \"黑政发〔2026〕30号\"\n",
    );
    net.drop_file("prov-gov", "harbin-gov", "督办测试.txt", b"urgent");
    let st = wait_all_delivered(&net.root("prov-gov"), 1).await;
    let doc = st[0].doc_id.clone();
    let row = |hub: &RunningHub| {
        let (dir, doc) = (hub.data_dir.clone(), doc.clone());
        async move {
            let v = ask_hub(
                &dir,
                &HubRequest::Status {
                    doc: doc.parse().unwrap(),
                },
            )
            .await;
            v["recipients"][0].clone()
        }
    };

    // Past the deadline (urgent: 4 h), both hubs run the ladder at once,
    // their own schedulers too: the urge runs once.
    clock.advance(4 * HOUR + Duration::from_secs(60));
    let (x, y) = tokio::join!(a.handle.escalate_now(), b.handle.escalate_now());
    let _ = (x.unwrap(), y.unwrap());
    let r = row(&b).await;
    assert_eq!(
        (r["urge_count"].as_u64(), r["escalation_level"].as_u64()),
        (Some(1), Some(1))
    );
    let inbox = net.root("harbin-gov").join("inbox/prov-gov").join(&doc);
    wait_until("the urging notice at harbin-gov", || {
        inbox.join("催办通知-1.txt").exists().then_some(())
    })
    .await;

    // Two hours later: supervision, once, to the supervisor (on A).
    clock.advance(2 * HOUR);
    let (x, y) = tokio::join!(a.handle.escalate_now(), b.handle.escalate_now());
    let _ = (x.unwrap(), y.unwrap());
    let r = row(&a).await;
    assert_eq!(
        (r["urge_count"].as_u64(), r["escalation_level"].as_u64()),
        (Some(1), Some(2))
    );
    let dir = net.root("prov-supervision").join("inbox/督办");
    wait_until("the supervision notice", || {
        gongwen_tests::first_file(&dir).map(|_| ())
    })
    .await;
    // Nothing more, whoever looks.
    clock.advance(24 * HOUR);
    assert_eq!(a.handle.escalate_now().await.unwrap(), 0);
    assert_eq!(b.handle.escalate_now().await.unwrap(), 0);
    // Exactly one notice of each at the units.
    let urges = std::fs::read_dir(&inbox)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("催办通知"))
        .count();
    assert_eq!(urges, 1, "the urge ran more than once");
    let supervised = std::fs::read_dir(&dir).unwrap().flatten().count();
    assert_eq!(supervised, 1, "supervision ran more than once");
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_documents_survive_one_hub_killed_five_times() {
    if !pg::available() {
        return;
    }
    const DOCS: usize = 1000;
    let cluster = pg::Cluster::start();
    let net = Net::new();
    for id in ["prov-gov", "harbin-gov", "daqing-gov"] {
        net.issue(id, Role::Node);
    }
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut a = HubProcess::start_config(
        &net,
        net.hub_config_as("hub-a", any, &shared(&cluster)),
        None,
    )
    .await;
    let b = HubProcess::start_config(
        &net,
        net.hub_config_as("hub-b", any, &shared(&cluster)),
        None,
    )
    .await;
    let (a_addr, b_addr) = (a.addr, b.addr);
    let _prov = agent(&net, "prov-gov", &[a_addr, b_addr]);
    let _harbin = agent(&net, "harbin-gov", &[b_addr, a_addr]);
    let _daqing = agent(&net, "daqing-gov", &[a_addr, b_addr]);
    b.wait_units(3).await;

    // 1,000 documents, each to both cities, dropped at once.
    for n in 0..DOCS {
        net.drop_file(
            "prov-gov",
            "cities",
            &format!("通知{n:04}.txt"),
            format!("第{n}号通知正文 {}", "内容".repeat(n % 300)).as_bytes(),
        );
    }
    let sent = net.root("prov-gov").join("sent");
    let inboxes = [
        net.root("harbin-gov").join("inbox/prov-gov"),
        net.root("daqing-gov").join("inbox/prov-gov"),
    ];
    let progress = || {
        format!(
            "accepted {}, at harbin-gov {}, at daqing-gov {}",
            count_entries(&sent),
            count_entries(&inboxes[0]),
            count_entries(&inboxes[1])
        )
    };

    // Hub A is killed five times while the documents flow, each time once
    // more of them were accepted, and started again on the same port.
    for round in 1..=5 {
        let target = round * DOCS / 7;
        wait_within(
            &format!("{target} accepted before kill {round}"),
            Duration::from_secs(120),
            || {
                (count_entries(&sent) >= target)
                    .then_some(())
                    .ok_or_else(progress)
            },
        )
        .await;
        a.kill9();
        eprintln!("kill {round}: {}", progress());
        a = HubProcess::start_config(
            &net,
            net.hub_config_as("hub-a", a_addr, &shared(&cluster)),
            None,
        )
        .await;
    }

    // Every document in every inbox, once; every receipt at the sender.
    wait_within(
        "every document in both inboxes",
        Duration::from_secs(300),
        || {
            let done = inboxes.iter().all(|i| count_entries(i) >= DOCS);
            done.then_some(()).ok_or_else(progress)
        },
    )
    .await;
    for inbox in &inboxes {
        let mut titles: Vec<String> = std::fs::read_dir(inbox)
            .unwrap()
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .map(|e| {
                let files: Vec<String> = std::fs::read_dir(e.path())
                    .unwrap()
                    .flatten()
                    .map(|f| f.file_name().to_string_lossy().into_owned())
                    .filter(|f| f.starts_with("通知"))
                    .collect();
                assert_eq!(files.len(), 1, "{}: {files:?}", e.path().display());
                files[0].clone()
            })
            .collect();
        titles.sort();
        titles.dedup();
        assert_eq!(
            titles.len(),
            DOCS,
            "{}: documents missing or doubled",
            inbox.display()
        );
    }
    wait_delivered_within(&net.root("prov-gov"), DOCS, Duration::from_secs(120)).await;
    // One chain, every accept and delivery once.
    let text = audit_verify(&net, "hub-b");
    assert!(
        text.contains(&format!("intact: {} entries", 3 * DOCS)),
        "{text}"
    );
    drop(a);
    drop(b);
}

/// A hub gives a unit's claims back when the unit leaves; while the
/// database is away (a failover) that fails, and a live hub's claims never
/// lapse. The hub finds such claims itself, so the unit, now at the other
/// hub, still gets its documents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_a_hub_could_not_give_back_do_not_strand_a_unit_at_the_other_hub() {
    if !pg::available() {
        return;
    }
    let cluster = pg::Cluster::start();
    let net = Net::new();
    net.issue("prov-gov", Role::Node);
    net.issue("harbin-gov", Role::Node);
    let system = gongwen_common::clock::system();
    let a = start_hub(&net, &cluster, "hub-a", system.clone()).await;
    let b = start_hub(&net, &cluster, "hub-b", system.clone()).await;
    let _prov = agent(&net, "prov-gov", &[a.addr]);
    // harbin-gov has been at hub B (so it is known) and is away now.
    let harbin = agent(&net, "harbin-gov", &[b.addr]);
    a.wait_ready(&["prov-gov", "harbin-gov"]).await;
    harbin.stop().await;
    for n in 0..3 {
        net.drop_file("prov-gov", "harbin-gov", &format!("通知{n}.txt"), b"text");
    }
    let sent = net.root("prov-gov").join("sent");
    wait_within("three accepted", Duration::from_secs(60), || {
        (count_entries(&sent) == 3)
            .then_some(())
            .ok_or_else(|| format!("accepted {}", count_entries(&sent)))
    })
    .await;
    // What hub B leaves behind when harbin-gov's link to it dropped while
    // the database could not be written: its claims on the three.
    let held = cluster.sql(&format!(
        "UPDATE queue SET holder = (SELECT instance FROM hubs WHERE label LIKE '%:{}')
         WHERE recipient = 'harbin-gov'",
        b.addr.port()
    ));
    assert!(held.ends_with("UPDATE 3"), "claims set: {held}");

    // harbin-gov comes back at hub A, which B keeps running beside.
    let _harbin = agent(&net, "harbin-gov", &[a.addr]);
    wait_inbox(&net.root("harbin-gov"), "prov-gov", 3).await;
    wait_all_delivered(&net.root("prov-gov"), 3).await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hubs_carry_on_when_the_database_primary_dies_and_its_standby_is_promoted() {
    if !pg::available() {
        return;
    }
    const DOCS: usize = 100;
    let mut primary = pg::Cluster::start();
    let standby = primary.standby();
    // Both servers in one multi-host string: a client takes the one that
    // accepts writes.
    let conn = format!(
        "host={},{} port=5432 dbname=gongwen user=gongwen target_session_attrs=read-write connect_timeout=2",
        primary.host(),
        standby.host()
    );
    let store = format!("[store]\npostgres = \"{conn}\"\npoll = \"1s\"\nlease = \"3s\"\n");
    let net = Net::new();
    net.issue("prov-gov", Role::Node);
    net.issue("harbin-gov", Role::Node);
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let system = gongwen_common::clock::system();
    let a = net
        .start_hub_config(net.hub_config_as("hub-a", any, &store), system.clone())
        .await;
    let b = net
        .start_hub_config(net.hub_config_as("hub-b", any, &store), system.clone())
        .await;
    let _prov = agent(&net, "prov-gov", &[a.addr, b.addr]);
    let _harbin = agent(&net, "harbin-gov", &[b.addr, a.addr]);
    a.wait_ready(&["prov-gov", "harbin-gov"]).await;

    for n in 0..DOCS {
        net.drop_file(
            "prov-gov",
            "harbin-gov",
            &format!("报告{n:03}.txt"),
            format!("第{n}号").as_bytes(),
        );
    }
    let sent = net.root("prov-gov").join("sent");
    let inbox = net.root("harbin-gov").join("inbox/prov-gov");
    wait_within("a third accepted", Duration::from_secs(120), || {
        (count_entries(&sent) >= DOCS / 3)
            .then_some(())
            .ok_or_else(|| format!("accepted {}", count_entries(&sent)))
    })
    .await;

    // The primary's machine is lost; the standby is promoted.
    primary.kill9();
    let accepted_before: Vec<String> = std::fs::read_dir(&sent)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    eprintln!("primary killed with {} accepted", accepted_before.len());
    standby.promote();

    // Everything arrives, and nothing the hubs had accepted is missing.
    wait_within(
        "every document at harbin-gov",
        Duration::from_secs(150),
        || {
            (count_entries(&inbox) >= DOCS)
                .then_some(())
                .ok_or_else(|| {
                    format!(
                        "accepted {}, at harbin-gov {}",
                        count_entries(&sent),
                        count_entries(&inbox)
                    )
                })
        },
    )
    .await;
    for doc in &accepted_before {
        assert!(
            inbox.join(doc).exists(),
            "{doc} was accepted before the failover and never arrived"
        );
    }
    wait_delivered_within(&net.root("prov-gov"), DOCS, Duration::from_secs(60)).await;
    let text = audit_verify(&net, "hub-a");
    assert!(
        text.contains(&format!("intact: {} entries", 2 * DOCS)),
        "{text}"
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_hub_moves_to_postgres_with_db_import() {
    if !pg::available() {
        return;
    }
    let cluster = pg::Cluster::start();
    let net = Net::new();
    net.issue("prov-gov", Role::Node);
    net.issue("harbin-gov", Role::Node);
    let hub = net.start_hub().await;
    let addr = hub.addr;
    let _prov = net.start_agent("prov-gov", addr);
    let harbin = net.start_agent("harbin-gov", addr);
    hub.wait_ready(&["prov-gov", "harbin-gov"]).await;
    // One delivered; one still queued for harbin-gov, which is offline.
    net.drop_file("prov-gov", "harbin-gov", "第一件.txt", b"one");
    wait_all_delivered(&net.root("prov-gov"), 1).await;
    harbin.stop().await;
    let body = "第二件正文\n".repeat(300_000).into_bytes(); // 4.5 MiB: content in several rows
    net.drop_file("prov-gov", "harbin-gov", "第二件.txt", &body);
    let sent = net.root("prov-gov").join("sent");
    wait_within("the second accepted", Duration::from_secs(60), || {
        (count_entries(&sent) == 2)
            .then_some(())
            .ok_or_else(|| format!("accepted {}", count_entries(&sent)))
    })
    .await;
    let data_dir = hub.data_dir.clone();
    hub.stop().await;
    assert!(audit_verify(&net, "hub").contains("intact: 3 entries"));

    // Into PostgreSQL.
    let pg_config = net.hub_config_as("hub-pg", addr, &shared(&cluster));
    let import = |json: bool| {
        let mut cmd = std::process::Command::new(bin("gongwen-hub"));
        cmd.args(["db", "import", "--from"])
            .arg(&data_dir)
            .arg("--config")
            .arg(&pg_config.path);
        if json {
            cmd.arg("--json");
        }
        cmd.output().unwrap()
    };
    let out = import(true);
    assert!(
        out.status.success(),
        "db import failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(done["documents"], 2, "{done}");
    assert_eq!(done["queued"], 1, "{done}");
    assert_eq!(done["audit_entries"], 3, "{done}");
    assert!(done["content_bytes"].as_u64().unwrap() > body.len() as u64);
    assert!(audit_verify(&net, "hub-pg").contains("intact: 3 entries"));
    // Only into an empty database.
    let again = import(false);
    assert!(!again.status.success());
    let e = String::from_utf8_lossy(&again.stderr);
    assert!(e.contains("already holds"), "{e}");

    // The hub on PostgreSQL delivers what was queued, and the agents see
    // the same hub (no documents offered again).
    let hub = net
        .start_hub_config(pg_config, gongwen_common::clock::system())
        .await;
    let _harbin = net.start_agent("harbin-gov", addr);
    let docs = wait_inbox(&net.root("harbin-gov"), "prov-gov", 2).await;
    let second = docs
        .iter()
        .find(|d| d.join("第二件.txt").exists())
        .expect("the second document at harbin-gov");
    assert!(std::fs::read(second.join("第二件.txt")).unwrap() == body);
    wait_all_delivered(&net.root("prov-gov"), 2).await;
    assert!(audit_verify(&net, "hub-pg").contains("intact: 4 entries"));
    hub.stop().await;
}
