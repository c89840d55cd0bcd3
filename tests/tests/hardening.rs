//! The second round of hardening (issue 21), each finding tried the way a
//! hostile client or an unlucky clerk would: answers given at the same
//! moment, a console flooded from the LAN, files still being copied, a
//! group with a revoked member, a unit that floods an offline one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use gongwen_agent::unit::store::ReceivedState;
use gongwen_common::DocId;
use gongwen_common::receipt::{Receipt, ReceiptKind};
use gongwen_tests::web::{Browser, PASSWORD, Units, units};
use gongwen_tests::{RunningAgent, wait_inbox, wait_until};

fn browser(agent: &RunningAgent) -> Browser {
    Browser::new(agent.console.expect("the agent has a console"))
}

/// Drop `n` documents from prov-gov to harbin-gov; their ids once all are
/// recorded as received.
async fn send_many(u: &Units, n: usize) -> Vec<DocId> {
    let root = u.net.root("harbin-gov");
    let before = gongwen_tests::inbox_docs(&root, "prov-gov").len();
    for i in 0..n {
        u.net.drop_file(
            "prov-gov",
            "harbin-gov",
            &format!("通知-{i}.txt"),
            format!("第 {i} 份").as_bytes(),
        );
    }
    let docs = wait_inbox(&root, "prov-gov", before + n).await;
    let mut ids: Vec<DocId> = docs
        .iter()
        .map(|d| DocId::parse(&d.file_name().unwrap().to_string_lossy()).unwrap())
        .collect();
    ids.sort();
    let ids: Vec<DocId> = ids.split_off(before);
    for id in &ids {
        u.harbin.wait_received(*id).await;
    }
    ids
}

/// The unit's own record of `doc`, its stored answer receipt, and what the
/// hub recorded for it: all three say the same, and it is `expected`.
async fn one_answer_everywhere(u: &Units, doc: DocId, expected: ReceivedState) {
    let (rec, _) = u.harbin.parts.store().received(doc).unwrap().unwrap();
    assert_eq!(rec.state, expected, "the unit's record of {doc}");
    let receipt = u.harbin.parts.store().answer(doc).unwrap().unwrap();
    let (r, _) = Receipt::verify(&receipt, None, time::OffsetDateTime::now_utc()).unwrap();
    let kind = match expected {
        ReceivedState::Acknowledged => ReceiptKind::Acknowledged,
        _ => ReceiptKind::Rejected,
    };
    assert_eq!(r.kind, kind, "the unit's stored receipt for {doc}");
    let want = expected.as_str();
    wait_until(&format!("the hub to record {doc} as {want}"), || {
        let v = futures_now(gongwen_tests::ask_hub(
            &u.hub.data_dir,
            &gongwen_hub::ops::control::Request::Status { doc },
        ));
        (v["recipients"][0]["state"] == want).then_some(())
    })
    .await;
}

fn futures_now<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

/// H1: two console sessions press 签收 and 退回 on the same document at
/// the same moment: exactly one succeeds, the other is told it was already
/// answered, and the unit, its stored receipt and the hub all agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clerks_answering_one_document_at_once_get_one_success_and_one_refusal() {
    let u = units().await;
    let docs = send_many(&u, 8).await;
    let mut a = browser(&u.harbin);
    a.log_in("li.si", PASSWORD).await;
    let mut b = browser(&u.harbin);
    b.log_in("li.si", PASSWORD).await;
    let csrf_a = a.get("/inbox").await.csrf().unwrap();
    let csrf_b = b.get("/inbox").await.csrf().unwrap();
    for doc in &docs {
        let (ack, reject) = (format!("/inbox/{doc}/ack"), format!("/inbox/{doc}/reject"));
        let (mut a2, mut b2) = (a.clone(), b.clone());
        let (fa, fb) = (
            [("by", "李四"), ("csrf", csrf_a.as_str())],
            [("reason", "错发"), ("csrf", csrf_b.as_str())],
        );
        let (ra, rb) = tokio::join!(a2.post_form(&ack, &fa), b2.post_form(&reject, &fb));
        let mut statuses = [ra.status, rb.status];
        statuses.sort();
        assert_eq!(
            statuses,
            [303, 409],
            "{doc}: one answer succeeds, one is refused ({} / {})",
            ra.text(),
            rb.text()
        );
        let refused = if ra.status == 409 { &ra } else { &rb };
        assert!(refused.text().contains("已经"), "{}", refused.text());
        let expected = if ra.status == 303 {
            ReceivedState::Acknowledged
        } else {
            ReceivedState::Rejected
        };
        one_answer_everywhere(&u, *doc, expected).await;
    }
}

/// H1 through the API: two scripts with bearer tokens, many pairs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_scripts_answering_one_document_at_once_get_one_success_and_one_refusal() {
    let u = units().await;
    let accounts = u.net.root("harbin-gov").join("state").join("accounts.json");
    let mut tokens = Vec::new();
    for _ in 0..2 {
        let (_, token) = gongwen_agent::unit::accounts::Accounts::edit(&accounts, |a| {
            a.create_token("li.si", 0)
        })
        .unwrap();
        tokens.push(format!("Bearer {token}"));
    }
    let docs = send_many(&u, 8).await;
    for doc in &docs {
        let (ack, reject) = (
            format!("/api/v1/inbox/{doc}/ack"),
            format!("/api/v1/inbox/{doc}/reject"),
        );
        let (mut a, mut b) = (browser(&u.harbin), browser(&u.harbin));
        let json = ("content-type", "application/json");
        let (ha, hb) = (
            [("authorization", tokens[0].as_str()), json],
            [("authorization", tokens[1].as_str()), json],
        );
        let (ra, rb) = tokio::join!(
            a.send("POST", &ack, &ha, r#"{"by":"李四"}"#.as_bytes().to_vec()),
            b.send(
                "POST",
                &reject,
                &hb,
                r#"{"reason":"错发"}"#.as_bytes().to_vec()
            ),
        );
        let mut statuses = [ra.status, rb.status];
        statuses.sort();
        assert_eq!(statuses, [200, 409], "{doc}: {} / {}", ra.text(), rb.text());
        let expected = if ra.status == 200 {
            ReceivedState::Acknowledged
        } else {
            ReceivedState::Rejected
        };
        one_answer_everywhere(&u, *doc, expected).await;
    }
}

/// H1 from the command line: `gongwen-agent ack` and `reject` run at the
/// same moment as two processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_command_line_answers_at_once_sign_exactly_one_receipt() {
    let u = units().await;
    let docs = send_many(&u, 4).await;
    let config = Arc::new(u.net.path().join("harbin-gov.toml"));
    for doc in &docs {
        let id = doc.to_string();
        let start = Arc::new(std::sync::Barrier::new(2));
        let run = |args: Vec<String>| {
            let (config, start) = (config.clone(), start.clone());
            std::thread::spawn(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                start.wait();
                gongwen_tests::run_cli("gongwen-agent", &args, &config)
            })
        };
        let ack = run(vec!["ack".into(), id.clone(), "--by".into(), "李四".into()]);
        let reject = run(vec![
            "reject".into(),
            id.clone(),
            "--reason".into(),
            "错发".into(),
        ]);
        let (ack, reject) = (ack.join().unwrap(), reject.join().unwrap());
        assert!(
            ack.0 != reject.0,
            "{doc}: exactly one succeeds: ack {ack:?}, reject {reject:?}"
        );
        let refused = if ack.0 { &reject.1 } else { &ack.1 };
        assert!(refused.contains("已经"), "{refused}");
        let expected = if ack.0 {
            ReceivedState::Acknowledged
        } else {
            ReceivedState::Rejected
        };
        one_answer_everywhere(&u, *doc, expected).await;
    }
}

/// A unit whose agent runs as a process of its own (its memory and its
/// descriptors are its own), with a console and the clerk li.si; prov-gov
/// in this process, to send to it and receive from it.
struct ConsoleUnit {
    net: gongwen_tests::Net,
    _hub: gongwen_tests::RunningHub,
    harbin: gongwen_tests::AgentProcess,
    console: std::net::SocketAddr,
    _prov: RunningAgent,
}

async fn console_unit(open_files: Option<u64>) -> ConsoleUnit {
    use gongwen_agent::unit::accounts::{Accounts, UserRole};
    let net = gongwen_tests::Net::new();
    for id in ["prov-gov", "harbin-gov"] {
        net.issue(id, gongwen_common::Role::Node);
    }
    let hub = net.start_hub().await;
    let accounts = net.root("harbin-gov").join("state").join("accounts.json");
    Accounts::edit(&accounts, |a| {
        a.add_user("li.si", "李四", UserRole::Clerk, PASSWORD, 0)
    })
    .unwrap();
    let harbin = gongwen_tests::AgentProcess::start_with(
        &net,
        "harbin-gov",
        hub.addr,
        "[console]\nlisten = \"127.0.0.1:0\"",
        open_files,
    );
    let console = harbin.console_addr().await;
    let prov = net.start_agent("prov-gov", hub.addr);
    hub.wait_ready(&["prov-gov", "harbin-gov"]).await;
    ConsoleUnit {
        net,
        _hub: hub,
        harbin,
        console,
        _prov: prov,
    }
}

/// A loopback address standing for machine `n` of the LAN.
fn machine(n: u32) -> std::net::IpAddr {
    std::net::Ipv4Addr::from(0x7f00_0000 + 0x0001_0000 + n).into()
}

const MIB: u64 = 1 << 20;

/// M1: a 1 GiB field from a client with no session is refused before it is
/// read, on both upload routes; logged in, a 200 MiB title is refused
/// having read a few KiB of it; the agent's memory stays small.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_form_field_is_refused_before_it_is_read() {
    use gongwen_tests::web::post_huge_field;
    let u = console_unit(None).await;
    let doc = DocId::generate();
    for path in ["/compose".to_owned(), format!("/inbox/{doc}/reply")] {
        let r = post_huge_field(u.console, &path, "", &[], "csrf", 1 << 30).await;
        assert_eq!(r.status, Some(403), "{path} without a session: {r:?}");
        assert!(
            r.body_sent < 64 * MIB,
            "{path}: the console took {} MiB of a field from a client with no session",
            r.body_sent / MIB
        );
    }
    let mut b = Browser::new(u.console);
    b.log_in("li.si", PASSWORD).await;
    let csrf = b.get("/compose").await.csrf().unwrap();
    let r = post_huge_field(
        u.console,
        "/compose",
        &b.cookie_header(),
        &[("csrf", &csrf)],
        "title",
        200 * MIB,
    )
    .await;
    assert_eq!(r.status, Some(422), "a 200 MiB title: {r:?}");
    assert!(
        r.body_sent < 64 * MIB,
        "read {} MiB of a title",
        r.body_sent / MIB
    );
    let peak = u.harbin.peak_memory_kib() / 1024;
    eprintln!(
        "agent peak memory after a 1 GiB field with no session and a 200 MiB title: {peak} MiB"
    );
    assert!(peak < 200, "the agent's memory peaked at {peak} MiB");
    // And the console still serves its clerk.
    assert_eq!(b.get("/").await.status, 200);
}

/// M2: a burst of wrong logins from a hundred machines at once: of those
/// for one clerk (the right password among them) no more are tried than
/// the lock allows, those for unknown names are hashed a few at a time
/// (the rest wait, or are told the console is busy), and memory stays
/// small.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_logins_is_hashed_a_few_at_a_time_and_tries_no_more_than_the_lock_allows() {
    let u = console_unit(None).await;
    let attempt = |from: u32, name: String, password: &'static str| {
        let console = u.console;
        async move {
            Browser::from_address(console, machine(from))
                .try_log_in(&name, password)
                .await
                .status
        }
    };
    // 100 wrong passwords for one clerk, and the right one among them, from
    // 101 machines at once: no more are tried than the lock allows.
    let mut burst = tokio::task::JoinSet::new();
    for i in 0..101 {
        let password = if i == 50 { PASSWORD } else { "wrong-password" };
        burst.spawn(attempt(i, "li.si".into(), password));
    }
    let statuses = gongwen_tests::bounded("101 logins at once", burst.join_all()).await;
    let tried = statuses.iter().filter(|s| **s == 401 || **s == 303).count();
    assert!(
        tried <= gongwen_agent::front::console::session::MAX_FAILURES as usize,
        "{tried} of 101 logins sent together were tried: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| [401, 303, 403, 503].contains(s)),
        "{statuses:?}"
    );
    // 100 names nobody has, from 100 more machines: each costs a hash (an
    // unknown name must take as long as a known one), a few at a time.
    let mut burst = tokio::task::JoinSet::new();
    for i in 0..100 {
        burst.spawn(attempt(200 + i, format!("guess-{i}"), "wrong-password"));
    }
    let statuses = gongwen_tests::bounded("100 logins at once", burst.join_all()).await;
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 503),
        "wrong logins answered {statuses:?}"
    );
    let peak = u.harbin.peak_memory_kib() / 1024;
    eprintln!(
        "agent peak memory after 201 concurrent logins: {peak} MiB (of the last 100, {} hashed, {} told busy)",
        statuses.iter().filter(|s| **s == 401).count(),
        statuses.iter().filter(|s| **s == 503).count()
    );
    assert!(peak < 200, "the agent's memory peaked at {peak} MiB");
}

/// M3: one machine trying name after name is made to wait, while a clerk at
/// another machine logs in. (That junk names cannot push a real account's
/// failures out of the table is `session::tests::junk_names_cannot_flush_…`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_machine_trying_many_names_is_made_to_wait_and_others_are_not() {
    let u = console_unit(None).await;
    let mut guesser = Browser::from_address(u.console, machine(1));
    let mut tried = 0;
    let refused = loop {
        let page = guesser.try_log_in(&format!("name-{tried}"), "guess").await;
        if page.status != 401 {
            break page;
        }
        tried += 1;
        assert!(
            tried <= 40,
            "a machine tried {tried} names and was never made to wait"
        );
    };
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert!(refused.text().contains("这台电脑"), "{}", refused.text());
    // Now even the right password from that machine waits.
    let refused = guesser.try_log_in("li.si", PASSWORD).await;
    assert_eq!(refused.status, 403);
    Browser::from_address(u.console, machine(2))
        .log_in("li.si", PASSWORD)
        .await;
}

/// M4: with the descriptor limit at 1024, 1,100 idle connections from one
/// machine, and 1,200 from four, exhaust nothing: a clerk at another
/// machine gets the console, the outbox still sends and the inbox still
/// receives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_from_the_lan_exhaust_no_descriptors() {
    use gongwen_tests::web::{get_from, idle_connections};
    let u = console_unit(Some(1024)).await;
    let held = gongwen_tests::bounded(
        "1,100 connections from one machine",
        idle_connections(u.console, machine(1), 1_100),
    )
    .await;
    assert_eq!(
        gongwen_tests::bounded(
            "a clerk at another machine to reach the console",
            get_from(u.console, machine(9), "/login")
        )
        .await
        .unwrap(),
        200,
    );
    let mut more = Vec::new();
    for m in 2..6 {
        more.extend(
            gongwen_tests::bounded(
                "300 connections from one more machine",
                idle_connections(u.console, machine(m), 300),
            )
            .await,
        );
    }
    eprintln!("holding {} connections", held.len() + more.len());
    // The outbox: harbin-gov sends.
    let before = gongwen_tests::inbox_docs(&u.net.root("prov-gov"), "harbin-gov").len();
    u.net
        .drop_file("harbin-gov", "prov-gov", "报告.txt", b"sent while besieged");
    wait_inbox(&u.net.root("prov-gov"), "harbin-gov", before + 1).await;
    // The inbox: harbin-gov receives.
    let before = gongwen_tests::inbox_docs(&u.net.root("harbin-gov"), "prov-gov").len();
    u.net.drop_file(
        "prov-gov",
        "harbin-gov",
        "通知.txt",
        b"received while besieged",
    );
    wait_inbox(&u.net.root("harbin-gov"), "prov-gov", before + 1).await;
    let log = std::fs::read_to_string(&u.harbin.log).unwrap();
    assert!(
        !log.contains("Too many open files"),
        "the agent ran out of descriptors:\n{}",
        gongwen_tests::log_tail(&u.harbin.log, 20)
    );
    drop((held, more));
}

/// The spool folder of the one document prov-gov has claimed.
fn only_claim(net: &gongwen_tests::Net, from: &str) -> std::path::PathBuf {
    let spool = net.root(from).join("state").join("spool");
    let claims: Vec<_> = std::fs::read_dir(&spool)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| DocId::parse(&e.file_name().to_string_lossy()).is_ok())
        .map(|e| e.path())
        .collect();
    assert_eq!(claims.len(), 1, "claims in {}: {claims:?}", spool.display());
    claims[0].clone()
}

fn append(path: &std::path::Path, bytes: &[u8]) {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

/// N1: a copy that stalls for longer than the settle time (an SMB copy
/// over a slow link) is not taken until its writer has closed it; then
/// the whole file goes out, and what is filed under sent/ is what went.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_still_being_copied_is_taken_only_once_its_writer_closes_it() {
    use std::io::Write;
    let u = units().await;
    let path = u
        .net
        .root("prov-gov")
        .join("outbox")
        .join("harbin-gov")
        .join("x.docx");
    let mut first = b"PK".to_vec();
    first.extend(std::iter::repeat_n(b'A', 500_000));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut copy = std::fs::File::create(&path).unwrap();
    copy.write_all(&first).unwrap();
    copy.flush().unwrap();
    // The copy stalls. The positive barrier: the outbox has looked at it
    // twenty times since (its settle time is 100 ms; it looks every 50 ms
    // while something is pending), and has not taken it.
    let scans = |a: &RunningAgent| a.parts.counters().outbox_scans();
    let seen = scans(&u.prov);
    wait_until("twenty outbox scans", || {
        (scans(&u.prov) >= seen + 20).then_some(())
    })
    .await;
    assert!(path.exists(), "the half-copied file was taken");
    assert!(
        std::fs::read_dir(u.net.root("prov-gov").join("state").join("spool"))
            .unwrap()
            .filter_map(|e| e.ok())
            .all(|e| DocId::parse(&e.file_name().to_string_lossy()).is_err()),
        "the half-copied file was claimed"
    );
    // The copy goes on and ends.
    copy.write_all(&vec![b'B'; 500_000]).unwrap();
    drop(copy);
    let whole = std::fs::read(&path).unwrap();
    assert_eq!(whole.len(), 1_000_002);
    let docs = wait_inbox(&u.net.root("harbin-gov"), "prov-gov", 1).await;
    assert_eq!(std::fs::read(docs[0].join("x.docx")).unwrap(), whole);
    let doc = docs[0].file_name().unwrap().to_string_lossy().into_owned();
    let filed = u.net.root("prov-gov").join("sent").join(&doc);
    wait_until("the document filed under sent/", || {
        filed.exists().then_some(())
    })
    .await;
    assert_eq!(std::fs::read(filed.join("x.docx")).unwrap(), whole);
}

/// N1, later: a dropped file that changes after it was sealed but before
/// the hub has taken it (the agent stopped right after sealing it) is put
/// back into the outbox, nothing of it sent, and goes out whole once it is
/// finished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_changes_after_sealing_is_put_back_and_sent_whole() {
    use gongwen_tests::{AgentProcess, Net};
    let net = Net::new();
    for id in ["prov-gov", "harbin-gov"] {
        net.issue(id, gongwen_common::Role::Node);
    }
    let hub = net.start_hub().await;
    let _harbin = net.start_agent("harbin-gov", hub.addr);
    let mut prov = AgentProcess::start_armed(&net, "prov-gov", hub.addr, Some("agent-sealed"));
    net.drop_file("prov-gov", "harbin-gov", "报告.docx", b"PK first half");
    prov.wait_crash("agent-sealed").await;
    let claim = only_claim(&net, "prov-gov");
    append(
        &claim.join("files").join("报告.docx"),
        b" and the second half",
    );
    let _prov = AgentProcess::start(&net, "prov-gov", hub.addr);
    let docs = wait_inbox(&net.root("harbin-gov"), "prov-gov", 1).await;
    let got = std::fs::read(docs[0].join("报告.docx")).unwrap();
    assert_eq!(got, b"PK first half and the second half");
    let log = prov.log.clone();
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("put back into outbox/harbin-gov/"),
        "{}",
        gongwen_tests::log_tail(&log, 20)
    );
    // Exactly one document went, and nothing failed.
    let sent = net.root("prov-gov").join("sent");
    wait_until("the document filed under sent/", || {
        (std::fs::read_dir(&sent).ok()?.count() == 1).then_some(())
    })
    .await;
    assert_eq!(
        gongwen_tests::inbox_docs(&net.root("harbin-gov"), "prov-gov").len(),
        1
    );
    assert_eq!(
        gongwen_tests::count_entries(&net.root("prov-gov").join("failed")),
        0
    );
}

/// N1, last: a dropped file that changes after the hub took it but before
/// it was filed (the agent stopped in between) is not filed under sent/
/// as if it had gone: the changed file goes to failed/ with a note in
/// Chinese and English saying what changed and what went out instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_changes_after_it_went_out_is_not_filed_as_sent() {
    use gongwen_tests::{AgentProcess, Net};
    let net = Net::new();
    for id in ["prov-gov", "harbin-gov"] {
        net.issue(id, gongwen_common::Role::Node);
    }
    let hub = net.start_hub().await;
    let _harbin = net.start_agent("harbin-gov", hub.addr);
    let mut prov =
        AgentProcess::start_armed(&net, "prov-gov", hub.addr, Some("agent-sent-accepted"));
    net.drop_file("prov-gov", "harbin-gov", "报告.docx", b"PK as sealed");
    prov.wait_crash("agent-sent-accepted").await;
    let claim = only_claim(&net, "prov-gov");
    append(&claim.join("files").join("报告.docx"), b", and changed");
    let _prov = AgentProcess::start(&net, "prov-gov", hub.addr);
    let docs = wait_inbox(&net.root("harbin-gov"), "prov-gov", 1).await;
    assert_eq!(
        std::fs::read(docs[0].join("报告.docx")).unwrap(),
        b"PK as sealed"
    );
    let doc = docs[0].file_name().unwrap().to_string_lossy().into_owned();
    let filed = net.root("prov-gov").join("sent").join(&doc);
    wait_until("the document filed under sent/", || {
        filed.exists().then_some(())
    })
    .await;
    assert!(
        !filed.join("报告.docx").exists(),
        "sent/ holds a file that did not go out"
    );
    let note = std::fs::read_to_string(filed.join("报告.docx.已改动-未发出.txt")).unwrap();
    assert!(
        note.contains("在封装发出之后又被改动") && note.contains("改动前的内容"),
        "{note}"
    );
    let failed = net.root("prov-gov").join("failed");
    assert_eq!(
        std::fs::read(failed.join("报告.docx")).unwrap(),
        b"PK as sealed, and changed"
    );
    let why = std::fs::read_to_string(failed.join("报告.docx.error.txt")).unwrap();
    assert!(why.contains(&doc) && why.contains("12 字节"), "{why}");
}

/// M5: one unit floods four offline units (a group) with documents; the
/// hub takes at most `max_queued_per_sender` of them for each and asks for
/// the rest later (counted in /metrics), while another unit's document to
/// the same offline unit is taken. When they are all overdue, the
/// supervision office still sees everything: one 督办 notice file for the
/// round, listing every document; `supervise overdue` and the console's
/// CSV and API whole (over a megabyte, in parts); the console's page
/// paged and filtered at the hub.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_to_offline_units_is_capped_and_blinds_no_one() {
    use gongwen_common::Role;
    use gongwen_common::clock::ManualClock;
    const QUOTA: usize = 400;
    const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);
    let net = gongwen_tests::Net::new();
    net.issue("prov-gov", Role::Node);
    net.issue("prov-finance", Role::Node);
    net.issue("prov-supervision", Role::Supervisor);
    let offline = ["harbin-gov", "daqing-gov", "qiqihar-gov", "mudanjiang-gov"];
    for id in offline {
        net.issue(id, Role::Node);
    }
    let clock = ManualClock::new(time::OffsetDateTime::now_utc());
    let config = net.hub_config_as(
        "hub",
        "127.0.0.1:0".parse().unwrap(),
        &format!("[limits]\nqueued_per_sender = {QUOTA}\n[metrics]\nlisten = \"127.0.0.1:0\""),
    );
    let hub = net.start_hub_config(config, Arc::new(clock.clone())).await;
    // The four publish their keys, then go offline.
    let four: Vec<RunningAgent> = offline
        .iter()
        .map(|id| net.start_agent(id, hub.addr))
        .collect();
    hub.wait_ready(&offline).await;
    for a in four {
        a.stop().await;
    }
    hub.wait_nodes("the four offline", |rows| {
        rows.iter()
            .filter(|r| offline.contains(&r.id.as_str()))
            .all(|r| !r.connected)
    })
    .await;
    use gongwen_agent::unit::accounts::{Accounts, UserRole};
    Accounts::edit(
        &net.root("prov-supervision")
            .join("state")
            .join("accounts.json"),
        |a| a.add_user("zhao", "赵六", UserRole::Clerk, PASSWORD, 0),
    )
    .unwrap();
    let sup = RunningAgent::start(net.agent_config_with(
        "prov-supervision",
        hub.addr,
        "[console]\nlisten = \"127.0.0.1:0\"",
    ));
    let _prov = net.start_agent("prov-gov", hub.addr);
    let _finance = net.start_agent("prov-finance", hub.addr);
    hub.wait_ready(&["prov-gov", "prov-finance", "prov-supervision"])
        .await;

    // The flood: QUOTA + 5 documents to the group, each with the longest
    // title a document may have.
    let long_title: String = "关于进一步加强冬季安全生产工作的紧急通知"
        .chars()
        .cycle()
        .take(160)
        .collect();
    for i in 0..QUOTA + 5 {
        let name = format!("通知{i:04}.txt");
        net.sidecar(
            "prov-gov",
            "reporting",
            &name,
            &format!("title = \"{long_title}\"\nurgency = \"urgent\"\ndoc_number = \"黑政发〔2026〕{i}号\"\n"),
        );
        net.drop_file("prov-gov", "reporting", &name, b"x");
    }
    let prov_root = net.root("prov-gov");
    gongwen_tests::wait_within(
        "the hub to take the flood up to its quota",
        std::time::Duration::from_secs(120),
        || {
            let st = futures_now(gongwen_tests::agent_status(&prov_root));
            let sent = st.iter().filter(|d| d.stage == "sent").count();
            if sent == QUOTA {
                Ok(())
            } else {
                Err(format!("{sent} of {} sent", QUOTA + 5))
            }
        },
    )
    .await;
    let metrics = hub.metrics.unwrap();
    wait_until("the refusals counted in /metrics", || {
        let (_, text) = futures_now(gongwen_tests::prom::get(metrics, "/metrics"));
        let n: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("gongwen_uploads_refused_queue_full_total "))?
            .trim()
            .parse()
            .ok()?;
        (n >= 5.0).then_some(())
    })
    .await;
    let st = gongwen_tests::agent_status(&prov_root).await;
    assert_eq!(
        st.iter().filter(|d| d.stage == "sending").count(),
        5,
        "the rest wait"
    );
    // Another unit's document to an offline unit is taken all the same.
    net.sidecar(
        "prov-finance",
        "daqing-gov",
        "预算.txt",
        "urgency = \"urgent\"\n",
    );
    net.drop_file("prov-finance", "daqing-gov", "预算.txt", b"budget");
    gongwen_tests::wait_status(
        &net.root("prov-finance"),
        "prov-finance's document taken",
        |st| st.iter().any(|d| d.stage == "sent"),
    )
    .await;

    // All overdue and escalated: one run of the ladder, one round.
    clock.advance(7 * HOUR);
    hub.handle.escalate_now().await.unwrap();
    let rows = QUOTA * offline.len() + 1;
    let dir = net.root("prov-supervision").join("inbox").join("督办");
    let text = wait_until("one 督办 notice listing every overdue document", || {
        let files: Vec<_> = std::fs::read_dir(&dir).ok()?.flatten().collect();
        if files.len() != 1 {
            return None;
        }
        let text = std::fs::read_to_string(files[0].path()).ok()?;
        (text.matches("黑政发").count() == rows - 1).then_some(text)
    })
    .await;
    assert!(
        text.contains(&format!("以下 {rows} 份公文")),
        "{}",
        &text[..300]
    );

    // The whole list, through the supervision office's agent.
    let (ok, out) = gongwen_tests::run_cli(
        "gongwen-agent",
        &["supervise", "overdue", "--json"],
        &net.path().join("prov-supervision.toml"),
    );
    assert!(ok, "{}", &out[..out.len().min(500)]);
    assert!(out.len() > 1 << 20, "the answer is {} bytes", out.len());
    let all: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(all.len(), rows);
    // Read only in part (`| head`): the program ends quietly, no panic.
    let piped = std::process::Command::new("bash")
        .arg("-c")
        .arg("\"$0\" supervise overdue --json --config \"$1\" 2>err.txt | head -c 100 >/dev/null; echo ${PIPESTATUS[0]}; cat err.txt")
        .arg(gongwen_tests::bin("gongwen-agent"))
        .arg(net.path().join("prov-supervision.toml"))
        .current_dir(net.path())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&piped.stdout);
    assert!(
        said.starts_with("0\n") && !said.contains("panicked"),
        "{said}"
    );

    // The console: a page, filtered and paged at the hub; the CSV and the
    // API whole.
    let mut b = Browser::new(sup.console.unwrap());
    b.log_in("zhao", PASSWORD).await;
    let page = b.get("/supervision").await;
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(
        html.contains(&format!("共 {rows} 项")),
        "no total on the page"
    );
    // Each row of the overdue list has its 督办单 form.
    assert_eq!(
        html.matches("<form class=\"press\"").count(),
        50,
        "one page of 50"
    );
    let last = b
        .get(&format!("/supervision?page={}", rows.div_ceil(50)))
        .await
        .text();
    assert_eq!(last.matches("<form class=\"press\"").count(), rows % 50);
    let daqing = b.get("/supervision?unit=daqing-gov").await.text();
    assert!(
        daqing.contains(&format!("共 {} 项", QUOTA + 1)),
        "the filter"
    );
    let csv = b.get("/supervision/overdue.csv").await;
    assert_eq!(csv.status, 200);
    assert_eq!(csv.text().lines().count(), rows + 1);
    let api = b.get("/api/v1/supervision/overdue").await;
    let api: Vec<serde_json::Value> = serde_json::from_slice(&api.body).unwrap();
    assert_eq!(api.len(), rows);
}

/// N2: after the README's own `revoke --id daqing-gov`, a drop into
/// `outbox/cities/` and a console compose to the group reach harbin-gov;
/// the sender is told, naming daqing-gov and why, that it was left out;
/// daqing-gov is no longer offered as a recipient and `nodes` marks it;
/// and a document none of whose main recipients can receive fails with
/// its recipients kept in the failed sidecar and in `status`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_with_a_revoked_member_goes_to_the_others_and_says_who_was_left_out() {
    let u = units().await;
    u.net.revoke("daqing-gov");
    u.hub
        .wait_nodes("daqing-gov revoked", |rows| {
            rows.iter()
                .any(|r| r.id == "daqing-gov" && r.revoked && !r.can_receive)
        })
        .await;
    // prov-gov holds the new list (the hub pushes it).
    let daqing_cert =
        gongwen_common::pki::load_certs(&u.net.path().join("daqing-gov").join("daqing-gov.crt"))
            .unwrap()
            .remove(0);
    wait_until("prov-gov to hold the new revocation list", || {
        u.prov
            .parts
            .identity()
            .trust()
            .checker()
            .check(&daqing_cert, time::OffsetDateTime::now_utc())
            .is_err()
            .then_some(())
    })
    .await;

    // A drop into the group's folder.
    u.net
        .drop_file("prov-gov", "cities", "冬季安全通知.txt", b"to every city");
    let docs = wait_inbox(&u.net.root("harbin-gov"), "prov-gov", 1).await;
    let doc = docs[0].file_name().unwrap().to_string_lossy().into_owned();
    let sent = u.net.root("prov-gov").join("sent").join(&doc);
    let note = wait_until("the note naming who was left out", || {
        std::fs::read_to_string(sent.join("未发送单位.txt")).ok()
    })
    .await;
    assert!(
        note.contains("daqing-gov") && note.contains("吊销"),
        "{note}"
    );
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sent.join("metadata.json")).unwrap()).unwrap();
    assert_eq!(meta["left_out"][0]["unit"], "daqing-gov");
    assert_eq!(meta["to"], serde_json::json!(["harbin-gov"]));
    let st = gongwen_tests::agent_status(&u.net.root("prov-gov")).await;
    let mine = st.iter().find(|d| d.doc_id == doc).unwrap();
    assert_eq!(mine.left_out.len(), 1);
    assert!(mine.left_out[0].reason.contains("revoked"));

    // The console: the sent page says so; compose no longer offers
    // daqing-gov, refuses it typed, and sends to the group.
    let mut b = browser(&u.prov);
    b.log_in("wang", PASSWORD).await;
    let page = b.get(&format!("/sent/{doc}")).await.text();
    assert!(
        page.contains("daqing-gov") && page.contains("证书已被吊销"),
        "{page}"
    );
    let form = b.get("/compose").await;
    assert!(
        !form.text().contains("value=\"daqing-gov\""),
        "daqing-gov is still offered"
    );
    let csrf = form.csrf().unwrap();
    let refused = b
        .post_multipart(
            "/compose",
            &[("csrf", &csrf), ("to_more", "daqing-gov")],
            &[("main", "正文.txt", b"x")],
        )
        .await;
    assert_eq!(refused.status, 422);
    assert!(
        refused.text().contains("证书已被吊销"),
        "{}",
        refused.text()
    );
    let composed = b
        .post_multipart(
            "/compose",
            &[("csrf", &csrf), ("to", "cities"), ("title", "组发测试")],
            &[("main", "正文.txt", b"to the group")],
        )
        .await;
    assert_eq!(composed.status, 303, "{}", composed.text());
    wait_inbox(&u.net.root("harbin-gov"), "prov-gov", 2).await;

    // None of the main recipients can receive: it fails, saying whom it
    // was for, and the failed sidecar keeps them.
    let file = u.net.path().join("函.txt");
    std::fs::write(&file, b"only to daqing").unwrap();
    let (ok, out) = gongwen_tests::run_cli(
        "gongwen-agent",
        &[
            "send",
            file.to_str().unwrap(),
            "--to",
            "daqing-gov",
            "--cc",
            "harbin-gov",
            "--no-wait",
        ],
        &u.net.path().join("prov-gov.toml"),
    );
    assert!(ok, "{out}");
    let failed = u.net.root("prov-gov").join("failed");
    let why = wait_until("the document that cannot go to failed/", || {
        let e = std::fs::read_dir(&failed)
            .ok()?
            .flatten()
            .find(|e| e.file_name().to_string_lossy().ends_with(".error.txt"))?;
        std::fs::read_to_string(e.path()).ok()
    })
    .await;
    assert!(why.contains("daqing-gov") && why.contains("主送"), "{why}");
    let sidecar = std::fs::read_dir(&failed)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with(".meta.toml"))
        .unwrap();
    let sidecar: toml::Table = std::fs::read_to_string(sidecar.path())
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(sidecar["to"], toml::Value::Array(vec!["daqing-gov".into()]));
    assert_eq!(sidecar["cc"], toml::Value::Array(vec!["harbin-gov".into()]));
    let id = out
        .split_whitespace()
        .find(|w| DocId::parse(w).is_ok())
        .unwrap();
    let v = gongwen_tests::ask_agent(
        &u.net.root("prov-gov"),
        &gongwen_agent::front::control::Request::Status {
            doc: Some(DocId::parse(id).unwrap()),
        },
    )
    .await
    .unwrap();
    assert_eq!(v["stage"], "failed", "{v}");
    assert!(v["reason"].as_str().unwrap().contains("failed/"), "{v}");
}

/// A forward (转发) whose own title and 文号 are made up by the forwarding
/// unit is listed and headed by its original's, which the first issuer
/// signed; the forwarder's words show as its note.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forward_is_headed_by_its_originals_title_not_the_forwarders() {
    let u = units().await;
    u.net.sidecar(
        "prov-gov",
        "harbin-gov",
        "通知.txt",
        "title = \"关于做好冬季安全生产工作的通知\"\ndoc_number = \"黑政发〔2026〕1号\"\n",
    );
    u.net
        .drop_file("prov-gov", "harbin-gov", "通知.txt", b"original");
    let docs = wait_inbox(&u.net.root("harbin-gov"), "prov-gov", 1).await;
    let original = DocId::parse(&docs[0].file_name().unwrap().to_string_lossy()).unwrap();
    u.harbin.wait_received(original).await;
    // What a modified agent could send: the original's files and signed
    // header, under a title and number of its own.
    let req = gongwen_agent::outgoing::outbox::SendRequest {
        files: vec![docs[0].join("通知.txt")],
        to: vec!["prov-gov".into()],
        title: Some("紧急：请立即向以下账户汇款".into()),
        doc_number: Some("假〔2026〕99号".into()),
        forward_of: Some(original),
        ..Default::default()
    };
    gongwen_tests::ask_agent(
        &u.net.root("harbin-gov"),
        &gongwen_agent::front::control::Request::Send(Box::new(req)),
    )
    .await
    .unwrap();
    let got = wait_inbox(&u.net.root("prov-gov"), "harbin-gov", 1).await;
    let fwd = DocId::parse(&got[0].file_name().unwrap().to_string_lossy()).unwrap();
    u.prov.wait_received(fwd).await;
    let mut b = browser(&u.prov);
    b.log_in("wang", PASSWORD).await;
    let page = b.get(&format!("/inbox/{fwd}")).await.text();
    // The document's heading (its face's title, <h1 class="gw-title">).
    let at = page.find("<h1").unwrap();
    let h1 = &page[at..at + page[at..].find("</h1>").unwrap()];
    assert!(h1.contains("关于做好冬季安全生产工作的通知"), "{h1}");
    assert!(!h1.contains("汇款"), "{h1}");
    assert!(
        page.contains("转发单位所拟") && page.contains("假〔2026〕99号"),
        "{page}"
    );
    let list = b.get("/inbox").await.text();
    assert!(list.contains("关于做好冬季安全生产工作的通知") && !list.contains("汇款"));
}
