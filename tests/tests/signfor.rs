//! Sign-for, return and recall; deadlines, urging and escalation driven by
//! an injected clock; supervision queries. Real hub, real agents.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use gongwen_agent::front::control::{DocStatus, Request};
use gongwen_common::Role;
use gongwen_common::clock::ManualClock;
use gongwen_hub::ops::control::Request as HubRequest;
use gongwen_tests::{
    Net, RunningHub, agent_status, ask_agent, ask_hub, inbox_docs, wait_all_delivered, wait_inbox,
    wait_until,
};
use time::OffsetDateTime;

const HOUR: Duration = Duration::from_secs(3600);

struct World {
    net: Net,
    clock: ManualClock,
    hub: RunningHub,
    _agents: Vec<gongwen_tests::RunningAgent>,
}

/// prov-gov sends; the listed units receive; prov-supervision supervises.
async fn world(units: &[&str]) -> World {
    let net = Net::new();
    net.issue("prov-gov", Role::Node);
    net.issue("prov-supervision", Role::Supervisor);
    for u in units {
        net.issue(u, Role::Node);
    }
    let clock = ManualClock::new(OffsetDateTime::now_utc());
    let hub = net
        .start_hub_with("127.0.0.1:0".parse().unwrap(), Arc::new(clock.clone()))
        .await;
    let mut all = vec!["prov-gov", "prov-supervision"];
    all.extend_from_slice(units);
    let agents = all.iter().map(|id| net.start_agent(id, hub.addr)).collect();
    hub.wait_ready(&all).await;
    World {
        net,
        clock,
        hub,
        _agents: agents,
    }
}

/// Send an urgent document (deadline 4 h) to `to`; wait until everyone
/// has it; return its id.
async fn send_urgent(w: &World, to: &str, n: usize) -> String {
    let name = format!("通知{n}.txt");
    w.net.sidecar(
        "prov-gov",
        to,
        &name,
        "urgency = \"urgent\"\ndoc_number = \"黑政发〔2026〕12号\"\n",
    );
    w.net
        .drop_file("prov-gov", to, &name, format!("正文 {n}").as_bytes());
    let st = wait_all_delivered(&w.net.root("prov-gov"), n).await;
    st.iter()
        .find(|d| d.title == format!("通知{n}"))
        .unwrap()
        .doc_id
        .clone()
}

async fn act(w: &World, unit: &str, req: Request) -> Result<serde_json::Value, String> {
    ask_agent(&w.net.root(unit), &req)
        .await
        .map_err(|e| e.to_string())
}

/// `unit` signs for `doc` (签收) as `by`.
async fn sign_for(w: &World, unit: &str, doc: &str, by: &str) {
    act(
        w,
        unit,
        Request::Ack {
            doc: doc.parse().unwrap(),
            by: by.into(),
        },
    )
    .await
    .unwrap();
}

fn recipient<'a>(
    st: &'a [DocStatus],
    doc: &str,
    unit: &str,
) -> &'a gongwen_agent::front::control::RecipientStatus {
    st.iter()
        .find(|d| d.doc_id == doc)
        .unwrap()
        .recipients
        .iter()
        .find(|r| r.recipient == unit)
        .unwrap()
}

async fn wait_sender_state(w: &World, doc: &str, unit: &str, state: &str) -> Vec<DocStatus> {
    let deadline = tokio::time::Instant::now() + gongwen_tests::WAIT;
    loop {
        let st = agent_status(&w.net.root("prov-gov")).await;
        if st.iter().any(|d| {
            d.doc_id == doc
                && d.recipients
                    .iter()
                    .any(|r| r.recipient == unit && r.state == state)
        }) {
            return st;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{unit} never reached {state}: {st:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn hub_row(w: &World, doc: &str, unit: &str) -> serde_json::Value {
    hub_row_at(&w.hub, doc, unit).await
}

async fn hub_row_at(hub: &RunningHub, doc: &str, unit: &str) -> serde_json::Value {
    let v = ask_hub(
        &hub.data_dir,
        &HubRequest::Status {
            doc: doc.parse().unwrap(),
        },
    )
    .await;
    v["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["recipient"] == unit)
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn units_whose_clocks_are_two_hours_off_connect_and_deadlines_follow_the_hubs_clock() {
    use gongwen_common::clock::SkewedClock;
    let net = Net::new();
    for id in ["prov-gov", "harbin-gov"] {
        net.issue(id, Role::Node);
    }
    // The hub's clock is right (and held still, so its times are known).
    let hub_now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let clock = ManualClock::new(hub_now);
    let hub = net
        .start_hub_with("127.0.0.1:0".parse().unwrap(), Arc::new(clock.clone()))
        .await;
    // The sender's clock runs two hours ahead, the recipient's two behind;
    // both hold certificates issued just now.
    let skewed = |ahead| {
        Arc::new(SkewedClock {
            by: 2 * HOUR,
            ahead,
        })
    };
    let prov = net.agent_config("prov-gov", hub.addr);
    let harbin = net.agent_config("harbin-gov", hub.addr);
    let _agents = [
        gongwen_tests::RunningAgent::start_with_clock(prov, skewed(true)),
        gongwen_tests::RunningAgent::start_with_clock(harbin, skewed(false)),
    ];
    hub.wait_ready(&["prov-gov", "harbin-gov"]).await;

    // "Three days" means three days after the hub accepts it, by the hub's
    // clock; not by the sender's.
    net.sidecar("prov-gov", "harbin-gov", "通知.txt", "deadline = \"3d\"\n");
    net.drop_file("prov-gov", "harbin-gov", "通知.txt", "正文".as_bytes());
    let st = wait_all_delivered(&net.root("prov-gov"), 1).await;
    let doc = st[0].doc_id.clone();
    let at = |t: OffsetDateTime| gongwen_common::timefmt::rfc3339(t);
    let deadline = at(hub_now + time::Duration::days(3));
    let row = hub_row_at(&hub, &doc, "harbin-gov").await;
    assert_eq!(row["deadline"], deadline.as_str(), "{row}");
    assert_eq!(
        row["delivered_at"],
        at(hub_now).as_str(),
        "delivery is dated by the hub's clock, not the recipient's: {row}"
    );
    // Both units show the hub's deadline.
    let docs = wait_inbox(&net.root("harbin-gov"), "prov-gov", 1).await;
    let meta = |dir: &std::path::Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(dir.join("metadata.json")).unwrap()).unwrap()
    };
    assert_eq!(meta(&docs[0])["deadline"], deadline.as_str());
    let sent = net.root("prov-gov").join("sent").join(&doc);
    assert_eq!(meta(&sent)["deadline"], deadline.as_str());
    let inbox = ask_agent(&net.root("harbin-gov"), &Request::Inbox { pending: true })
        .await
        .unwrap();
    assert_eq!(inbox[0]["deadline"], deadline.as_str(), "{inbox}");

    // Signing for it just before the deadline by the hub's clock is on time,
    // whatever the recipient's clock says.
    clock.advance(3 * 24 * HOUR - Duration::from_secs(60));
    ask_agent(
        &net.root("harbin-gov"),
        &Request::Ack {
            doc: doc.parse().unwrap(),
            by: "李四".into(),
        },
    )
    .await
    .unwrap();
    let deadline_wait = tokio::time::Instant::now() + gongwen_tests::WAIT;
    loop {
        let row = hub_row_at(&hub, &doc, "harbin-gov").await;
        if row["state"] == "acknowledged" {
            assert_eq!(row["late"], false, "{row}");
            assert_eq!(
                row["acknowledged_at"],
                at(hub_now + time::Duration::days(3) - time::Duration::minutes(1)).as_str()
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline_wait,
            "never signed for: {row}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_and_reject_reach_the_sender_signed_by_the_recipient_with_name_and_reason() {
    let w = world(&["harbin-gov", "daqing-gov"]).await;
    let doc = send_urgent(&w, "cities", 1).await;
    let id = doc.parse().unwrap();

    act(
        &w,
        "harbin-gov",
        Request::Ack {
            doc: id,
            by: "李四".into(),
        },
    )
    .await
    .unwrap();
    act(
        &w,
        "daqing-gov",
        Request::Reject {
            doc: id,
            reason: "文号有误，请更正后重发".into(),
        },
    )
    .await
    .unwrap();

    wait_sender_state(&w, &doc, "harbin-gov", "acknowledged").await;
    let st = wait_sender_state(&w, &doc, "daqing-gov", "rejected").await;
    let h = recipient(&st, &doc, "harbin-gov");
    assert_eq!(h.acknowledged_by.as_deref(), Some("李四"));
    assert!(
        h.receipts
            .contains(&gongwen_common::receipt::ReceiptKind::Acknowledged)
    );
    let d = recipient(&st, &doc, "daqing-gov");
    assert_eq!(d.reason.as_deref(), Some("文号有误，请更正后重发"));

    // The hub holds the same answers.
    let hr = hub_row(&w, &doc, "harbin-gov").await;
    assert_eq!(
        (hr["state"].as_str(), hr["acknowledged_by"].as_str()),
        (Some("acknowledged"), Some("李四"))
    );
    let dr = hub_row(&w, &doc, "daqing-gov").await;
    assert_eq!(dr["rejected_reason"], "文号有误，请更正后重发");

    // Acting again, or on something unknown, is refused and changes nothing.
    let again = act(
        &w,
        "harbin-gov",
        Request::Ack {
            doc: id,
            by: "王五".into(),
        },
    )
    .await
    .unwrap_err();
    assert!(again.contains("已经由李四签收"), "{again}");
    let flip = act(
        &w,
        "harbin-gov",
        Request::Reject {
            doc: id,
            reason: "x".into(),
        },
    )
    .await
    .unwrap_err();
    assert!(flip.contains("已经由李四签收"), "{flip}");
    let unknown = act(
        &w,
        "harbin-gov",
        Request::Ack {
            doc: gongwen_common::DocId::generate(),
            by: "x".into(),
        },
    )
    .await
    .unwrap_err();
    assert!(unknown.contains("没有收到过这份公文"), "{unknown}");
    let no_reason = act(
        &w,
        "daqing-gov",
        Request::Reject {
            doc: id,
            reason: " ".into(),
        },
    )
    .await
    .unwrap_err();
    assert!(no_reason.contains("退回必须填写理由"), "{no_reason}");
    assert_eq!(
        hub_row(&w, &doc, "harbin-gov").await["acknowledged_by"],
        "李四"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recall_withdraws_unanswered_copies_and_leaves_signed_ones() {
    let w = world(&["harbin-gov", "daqing-gov"]).await;
    let doc = send_urgent(&w, "cities", 1).await;
    let id = doc.parse().unwrap();
    act(
        &w,
        "harbin-gov",
        Request::Ack {
            doc: id,
            by: "李四".into(),
        },
    )
    .await
    .unwrap();
    wait_sender_state(&w, &doc, "harbin-gov", "acknowledged").await;

    let v = act(
        &w,
        "prov-gov",
        Request::Recall {
            doc: id,
            reason: "内容有误".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(v["recalled_from"], serde_json::json!(["daqing-gov"]));
    assert_eq!(v["already_answered"], serde_json::json!(["harbin-gov"]));

    // daqing-gov's copy moves to recalled/, never deleted; harbin keeps its own.
    let moved = w
        .net
        .root("daqing-gov")
        .join("recalled/prov-gov")
        .join(&doc);
    let note = wait_until("the recalled copy", || {
        std::fs::read_to_string(moved.join("撤回说明.txt")).ok()
    })
    .await;
    assert!(note.contains("内容有误"), "{note}");
    assert!(moved.join("通知1.txt").exists());
    assert!(inbox_docs(&w.net.root("daqing-gov"), "prov-gov").is_empty());
    assert_eq!(inbox_docs(&w.net.root("harbin-gov"), "prov-gov").len(), 1);
    let e = act(
        &w,
        "daqing-gov",
        Request::Ack {
            doc: id,
            by: "x".into(),
        },
    )
    .await
    .unwrap_err();
    assert!(e.contains("已撤回"), "{e}");
    let inbox: Vec<gongwen_agent::incoming::clerk::InboxRow> = serde_json::from_value(
        act(&w, "daqing-gov", Request::Inbox { pending: false })
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(inbox[0].state, "recalled");
    let st = agent_status(&w.net.root("prov-gov")).await;
    assert_eq!(recipient(&st, &doc, "daqing-gov").state, "recalled");
    assert_eq!(recipient(&st, &doc, "harbin-gov").state, "acknowledged");
    assert_eq!(hub_row(&w, &doc, "daqing-gov").await["state"], "recalled");

    // Only the sender may recall.
    let e = act(
        &w,
        "harbin-gov",
        Request::Recall {
            doc: id,
            reason: String::new(),
        },
    )
    .await
    .unwrap_err();
    assert!(e.contains("only the sender"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_queued_for_an_offline_unit_is_withdrawn_at_the_hub() {
    let mut w = world(&["harbin-gov"]).await;
    // harbin-gov goes offline.
    let harbin = w._agents.pop().unwrap();
    harbin.stop().await;
    w.hub
        .wait_nodes("harbin-gov offline", |r| {
            r.iter().any(|n| n.id == "harbin-gov" && !n.connected)
        })
        .await;
    w.net
        .drop_file("prov-gov", "harbin-gov", "撤回测试.txt", b"never delivered");
    let st = wait_until("accepted by the hub", || {
        std::fs::read_dir(w.net.root("prov-gov").join("sent"))
            .ok()?
            .next()
    })
    .await;
    let doc = st.unwrap().file_name().to_string_lossy().into_owned();
    let v = act(
        &w,
        "prov-gov",
        Request::Recall {
            doc: doc.parse().unwrap(),
            reason: "发错".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(v["withdrawn_at_hub"], serde_json::json!(["harbin-gov"]));

    // When harbin-gov returns it gets the next document, not the recalled one.
    let _harbin = w.net.start_agent("harbin-gov", w.hub.addr);
    w.net
        .drop_file("prov-gov", "harbin-gov", "下一件.txt", b"next");
    let docs = wait_inbox(&w.net.root("harbin-gov"), "prov-gov", 1).await;
    assert_eq!(docs.len(), 1);
    assert!(docs[0].join("下一件.txt").exists());
    assert!(!docs[0].ends_with(&doc));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clock_drives_urge_then_supervise_exactly_once_each_across_a_hub_restart() {
    let w = world(&["harbin-gov"]).await;
    let doc = send_urgent(&w, "harbin-gov", 1).await;
    let h = &w.hub.handle;

    // Deadline is 4 h after acceptance; nothing happens before.
    w.clock.advance(4 * HOUR - Duration::from_secs(60));
    assert_eq!(h.escalate_now().await.unwrap(), 0);
    assert_eq!(hub_row(&w, &doc, "harbin-gov").await["urge_count"], 0);

    // At the deadline: urge (催办), once. (The hub's own scheduler may run
    // the step before escalate_now does; the row says it ran, once.)
    w.clock.advance(Duration::from_secs(120));
    h.escalate_now().await.unwrap();
    assert_eq!(h.escalate_now().await.unwrap(), 0, "a step runs once");
    let row = hub_row(&w, &doc, "harbin-gov").await;
    assert_eq!(
        (row["urge_count"].as_u64(), row["escalation_level"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(row["overdue"], true);
    let notice = w
        .net
        .root("harbin-gov")
        .join("inbox/prov-gov")
        .join(&doc)
        .join("催办通知-1.txt");
    let text = wait_until("the urging notice in harbin-gov's inbox", || {
        std::fs::read_to_string(&notice).ok()
    })
    .await;
    assert!(
        text.contains("催办") && text.contains("黑政发〔2026〕12号"),
        "{text}"
    );
    wait_until("urge count in harbin-gov's inbox", || {
        let v = futures_lite_block(ask_agent(
            &w.net.root("harbin-gov"),
            &Request::Inbox { pending: true },
        ));
        let rows: Vec<gongwen_agent::incoming::clerk::InboxRow> =
            serde_json::from_value(v.ok()?).ok()?;
        (rows.first()?.urge_count == 1).then_some(())
    })
    .await;

    // The hub restarts in the middle of the ladder.
    let addr = w.hub.addr;
    let World {
        net,
        clock,
        hub,
        _agents,
    } = w;
    hub.stop().await;
    let hub = net.start_hub_with(addr, Arc::new(clock.clone())).await;
    let w = World {
        net,
        clock,
        hub,
        _agents,
    };
    let h = &w.hub.handle;
    assert_eq!(
        h.escalate_now().await.unwrap(),
        0,
        "the urge does not run again after a restart"
    );

    // Two hours after the deadline: supervise (督办), once, to the supervisor.
    w.clock.advance(2 * HOUR);
    h.escalate_now().await.unwrap();
    assert_eq!(h.escalate_now().await.unwrap(), 0);
    let row = hub_row(&w, &doc, "harbin-gov").await;
    assert_eq!(
        (row["urge_count"].as_u64(), row["escalation_level"].as_u64()),
        (Some(1), Some(2))
    );
    let dir = w.net.root("prov-supervision").join("inbox/督办");
    let text = wait_until("the supervision notice at prov-supervision", || {
        let f = gongwen_tests::first_file(&dir)?;
        std::fs::read_to_string(f).ok()
    })
    .await;
    assert!(text.contains("harbin-gov") && text.contains(&doc), "{text}");

    // Weeks later: nothing more runs.
    w.clock.advance(24 * 14 * HOUR);
    assert_eq!(h.escalate_now().await.unwrap(), 0);
}

/// A 抄送 copy is for information: the ladder urges and escalates only the
/// 主送 copies (a supervision office once got a 督办 about its own 抄送
/// copy), and the sender's 催办 reaches a 抄送 copy only when it names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_for_information_are_not_urged_or_escalated_unless_the_sender_names_them() {
    let w = world(&["harbin-gov", "daqing-gov"]).await;
    w.net.sidecar(
        "prov-gov",
        "harbin-gov",
        "通知.txt",
        "urgency = \"urgent\"\ncc = [\"daqing-gov\"]\n",
    );
    w.net
        .drop_file("prov-gov", "harbin-gov", "通知.txt", b"body");
    let st = wait_all_delivered(&w.net.root("prov-gov"), 1).await;
    let doc = st[0].doc_id.clone();
    let id: gongwen_common::DocId = doc.parse().unwrap();
    // The sender's 催办 naming nobody: the 主送 copy only.
    let v = act(
        &w,
        "prov-gov",
        Request::Urge {
            doc: id,
            units: vec![],
        },
    )
    .await
    .unwrap();
    assert_eq!(v["urged"], serde_json::json!(["harbin-gov"]));
    // Naming the 抄送 unit reaches it.
    let v = act(
        &w,
        "prov-gov",
        Request::Urge {
            doc: id,
            units: vec![gongwen_common::NodeId::parse("daqing-gov").unwrap()],
        },
    )
    .await
    .unwrap();
    assert_eq!(v["urged"], serde_json::json!(["daqing-gov"]));
    // Past the deadline and both steps: the ladder runs for harbin-gov only.
    w.clock.advance(10 * HOUR);
    let h = &w.hub.handle;
    let mut ran = 0;
    for _ in 0..5 {
        ran += h.escalate_now().await.unwrap();
    }
    assert_eq!(
        ran, 2,
        "the urge and the 督办 of the 主送 copy, and nothing else"
    );
    let main = hub_row(&w, &doc, "harbin-gov").await;
    assert_eq!(
        (
            main["urge_count"].as_u64(),
            main["escalation_level"].as_u64()
        ),
        (Some(2), Some(2))
    );
    let cc = hub_row(&w, &doc, "daqing-gov").await;
    assert_eq!(cc["copy"], "cc");
    assert_eq!(
        (cc["urge_count"].as_u64(), cc["escalation_level"].as_u64()),
        (Some(1), Some(0)),
        "{cc}"
    );
    let dir = w.net.root("prov-supervision").join("inbox/督办");
    let text = wait_until("the supervision notice at prov-supervision", || {
        let f = gongwen_tests::first_file(&dir)?;
        std::fs::read_to_string(f).ok()
    })
    .await;
    assert!(
        text.contains("harbin-gov") && !text.contains("daqing-gov"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_due_while_the_hub_was_down_run_once_when_it_starts() {
    let w = world(&["harbin-gov"]).await;
    let doc = send_urgent(&w, "harbin-gov", 1).await;
    let addr = w.hub.addr;
    let World {
        net,
        clock,
        hub,
        _agents,
    } = w;
    hub.stop().await;
    // Down through the deadline and the supervision step.
    clock.advance(10 * HOUR);
    let hub = net.start_hub_with(addr, Arc::new(clock.clone())).await;
    let w = World {
        net,
        clock,
        hub,
        _agents,
    };
    // The scheduler runs on start by itself.
    let row = wait_until_row(&w, &doc, |r| r["escalation_level"] == 2).await;
    assert_eq!(row["urge_count"], 1);
    assert_eq!(w.hub.handle.escalate_now().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ack_after_escalation_stops_the_ladder_and_is_marked_late() {
    let w = world(&["harbin-gov"]).await;
    let doc = send_urgent(&w, "harbin-gov", 1).await;
    w.clock.advance(4 * HOUR + Duration::from_secs(60));
    // Run by escalate_now or by the hub's own scheduler, whichever is first.
    w.hub.handle.escalate_now().await.unwrap();
    assert_eq!(hub_row(&w, &doc, "harbin-gov").await["urge_count"], 1);
    act(
        &w,
        "harbin-gov",
        Request::Ack {
            doc: doc.parse().unwrap(),
            by: "李四".into(),
        },
    )
    .await
    .unwrap();
    let row = wait_until_row(&w, &doc, |r| r["state"] == "acknowledged").await;
    assert_eq!(row["late"], true);
    assert_eq!(row["overdue"], false);
    w.clock.advance(3 * HOUR);
    assert_eq!(
        w.hub.handle.escalate_now().await.unwrap(),
        0,
        "no supervision after the ack"
    );
    assert_eq!(hub_row(&w, &doc, "harbin-gov").await["escalation_level"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overdue_and_report_give_the_right_figures_for_a_scripted_scenario() {
    let units = ["harbin-gov", "daqing-gov", "qiqihar-gov", "mudanjiang-gov"];
    let w = world(&units).await;
    let dir = w.net.root("prov-gov").join("outbox");
    let _ = dir;
    w.net.sidecar(
        "prov-gov",
        "harbin-gov",
        "全省通知.txt",
        // All 主送: a 抄送 copy is for information and is never overdue
        // (hub::rules::supervision, a_copy_for_information_is_never_overdue).
        "urgency = \"urgent\"\nto = [\"daqing-gov\", \"qiqihar-gov\", \"mudanjiang-gov\"]\n",
    );
    w.net
        .drop_file("prov-gov", "harbin-gov", "全省通知.txt", b"body");
    let st = wait_all_delivered(&w.net.root("prov-gov"), 1).await;
    let doc = st[0].doc_id.clone();
    let id = doc.parse().unwrap();

    w.clock.advance(HOUR); // on time
    act(
        &w,
        "harbin-gov",
        Request::Ack {
            doc: id,
            by: "甲".into(),
        },
    )
    .await
    .unwrap();
    wait_until_row(&w, &doc, |r| r["state"] == "acknowledged").await;
    w.clock.advance(HOUR); // at 2 h: returned
    act(
        &w,
        "qiqihar-gov",
        Request::Reject {
            doc: id,
            reason: "非本单位业务".into(),
        },
    )
    .await
    .unwrap();
    wait_until_row_of(&w, &doc, "qiqihar-gov", |r| r["state"] == "rejected").await;
    w.clock.advance(4 * HOUR); // at 6 h: late
    act(
        &w,
        "daqing-gov",
        Request::Ack {
            doc: id,
            by: "乙".into(),
        },
    )
    .await
    .unwrap();
    wait_until_row_of(&w, &doc, "daqing-gov", |r| r["state"] == "acknowledged").await;
    w.clock.advance(4 * HOUR); // now 10 h: mudanjiang never answered

    let overdue = ask_hub(&w.hub.data_dir, &HubRequest::Overdue).await;
    let rows = overdue.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{overdue:#}");
    assert_eq!(rows[0]["recipient"], "mudanjiang-gov");
    assert_eq!(rows[0]["late_seconds"], 6 * 3600);
    assert_eq!(rows[0]["doc_id"], doc);

    let report = ask_hub(
        &w.hub.data_dir,
        &HubRequest::Report {
            since: None,
            until: None,
        },
    )
    .await;
    let unit = |u: &str| {
        report["units"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["unit"] == u)
            .unwrap()
            .clone()
    };
    assert_eq!(unit("harbin-gov")["acknowledged_on_time"], 1);
    assert_eq!(unit("harbin-gov")["median_sign_seconds"], 3600.0);
    assert_eq!(unit("daqing-gov")["acknowledged_late"], 1);
    assert_eq!(unit("daqing-gov")["median_sign_seconds"], 6.0 * 3600.0);
    assert_eq!(unit("qiqihar-gov")["rejected"], 1);
    assert_eq!(unit("mudanjiang-gov")["pending"], 1);
    assert_eq!(unit("mudanjiang-gov")["overdue_now"], 1);
    for u in units {
        assert_eq!(unit(u)["received"], 1);
    }
    let sender = &report["senders"][0];
    assert_eq!(
        (
            sender["sender"].as_str(),
            sender["sent"].as_u64(),
            sender["fully_acknowledged"].as_u64()
        ),
        (Some("prov-gov"), Some(1), Some(0))
    );

    // A period that ends before the document: nothing.
    let since =
        gongwen_common::timefmt::rfc3339(OffsetDateTime::now_utc() + time::Duration::days(30));
    let empty = ask_hub(
        &w.hub.data_dir,
        &HubRequest::Report {
            since: Some(since),
            until: None,
        },
    )
    .await;
    assert!(empty["units"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_supervisor_units_get_supervision_data_through_their_agent() {
    let w = world(&["harbin-gov"]).await;
    let doc = send_urgent(&w, "harbin-gov", 1).await;
    w.clock.advance(5 * HOUR);
    let q = serde_json::json!({"query": "overdue"});
    let refused = act(
        &w,
        "harbin-gov",
        Request::Supervise {
            question: q.clone(),
        },
    )
    .await
    .unwrap_err();
    assert!(refused.contains("only supervisor units"), "{refused}");
    let v = act(&w, "prov-supervision", Request::Supervise { question: q })
        .await
        .unwrap();
    assert_eq!(v[0]["doc_id"], doc);
    assert_eq!(v[0]["recipient"], "harbin-gov");
    let status = act(
        &w,
        "prov-supervision",
        Request::Supervise {
            question: serde_json::json!({"query": "status", "doc": doc}),
        },
    )
    .await
    .unwrap();
    assert_eq!(status["recipients"][0]["overdue"], true);
}

async fn wait_until_row(
    w: &World,
    doc: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let v = ask_hub(
        &w.hub.data_dir,
        &HubRequest::Status {
            doc: doc.parse().unwrap(),
        },
    )
    .await;
    let unit = v["recipients"][0]["recipient"].as_str().unwrap().to_owned();
    wait_until_row_of(w, doc, &unit, pred).await
}

async fn wait_until_row_of(
    w: &World,
    doc: &str,
    unit: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + gongwen_tests::WAIT;
    loop {
        let row = hub_row(w, doc, unit).await;
        if pred(&row) {
            return row;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "row never matched: {row:#}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Run a future to completion from a synchronous probe (inside a
/// multi-thread runtime).
fn futures_lite_block<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evidence_bundle_verifies_with_openssl_and_fails_after_one_changed_byte() {
    let w = world(&["harbin-gov"]).await;
    let doc = send_urgent(&w, "harbin-gov", 1).await;
    let id = doc.parse().unwrap();
    act(
        &w,
        "harbin-gov",
        Request::Ack {
            doc: id,
            by: "李四".into(),
        },
    )
    .await
    .unwrap();
    wait_sender_state(&w, &doc, "harbin-gov", "acknowledged").await;

    let out = w.net.path().join("evidence");
    act(
        &w,
        "prov-gov",
        Request::Evidence {
            doc: id,
            out: out.clone(),
        },
    )
    .await
    .unwrap();
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".signed"))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "document.signed",
            "receipt-1-accepted-hub.signed",
            "receipt-2-delivered-harbin-gov.signed",
            "receipt-3-acknowledged-harbin-gov.signed"
        ]
    );
    // The recipient's own bundle holds its receipts too.
    let theirs = w.net.path().join("evidence-harbin");
    act(
        &w,
        "harbin-gov",
        Request::Evidence {
            doc: id,
            out: theirs.clone(),
        },
    )
    .await
    .unwrap();
    assert!(
        theirs
            .join("receipt-2-acknowledged-harbin-gov.signed")
            .exists()
    );

    if !gongwen_tests::tools::have_openssl(false) {
        return;
    }
    let run = |dir: &std::path::Path| {
        std::process::Command::new("sh")
            .arg(dir.join("verify.sh"))
            .output()
            .unwrap()
    };
    let good = run(&out);
    let text = String::from_utf8_lossy(&good.stdout).into_owned();
    assert!(good.status.success(), "{text}");
    assert!(
        text.contains("evidence verified") && !text.contains("FAIL"),
        "{text}"
    );
    assert!(run(&theirs).status.success());
    // The files are there, each checked against its signed digest; a
    // changed one is named.
    assert!(text.contains("OK    file"), "{text}");
    let files: Vec<_> = std::fs::read_dir(theirs.join("files"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(!files.is_empty());
    let _ = std::fs::remove_file(&files[0]);
    std::fs::write(&files[0], b"not what was sent").unwrap();
    let said = String::from_utf8_lossy(&run(&theirs).stdout).into_owned();
    assert!(
        said.contains("FAIL  file")
            && said.contains("not the file the document's signature covers"),
        "{said}"
    );
    if w.net.suite() == gongwen_common::suite::Suite::Gm {
        // SM2 signatures, each by a key the signer's certificate key bound.
        for line in [
            "OK    signature    document (SM2)",
            "OK    binding      receipt-2-delivered-harbin-gov",
            "OK    bound key    receipt-3-acknowledged-harbin-gov",
        ] {
            assert!(text.contains(line), "{line}: {text}");
        }
        // A binding with one byte changed no longer holds.
        let f = theirs.join("receipt-1-delivered-harbin-gov.sm2-binding");
        let mut bytes = std::fs::read(&f).unwrap();
        bytes[10] ^= 0x01;
        std::fs::write(&f, bytes).unwrap();
        let bad = run(&theirs);
        let said = String::from_utf8_lossy(&bad.stdout).into_owned();
        assert!(
            !bad.status.success()
                && said.contains("FAIL  binding      receipt-1-delivered-harbin-gov"),
            "{said}"
        );
    }

    // One byte of the acknowledgment changed: the bundle no longer verifies.
    let f = out.join("receipt-3-acknowledged-harbin-gov.signed");
    let mut bytes = std::fs::read(&f).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0x01;
    std::fs::write(&f, bytes).unwrap();
    let bad = run(&out);
    let text = String::from_utf8_lossy(&bad.stdout).into_owned();
    assert!(!bad.status.success(), "{text}");
    assert!(
        text.contains("FAIL  signature    receipt-3-acknowledged-harbin-gov"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_chain_holds_and_names_the_first_edited_entry() {
    let w = world(&["harbin-gov", "daqing-gov"]).await;
    let doc = send_urgent(&w, "cities", 1).await;
    let id = doc.parse().unwrap();
    act(
        &w,
        "harbin-gov",
        Request::Ack {
            doc: id,
            by: "李四".into(),
        },
    )
    .await
    .unwrap();
    wait_until_row_of(&w, &doc, "harbin-gov", |r| r["state"] == "acknowledged").await;
    let log = w.hub.data_dir.join("audit.log");
    let v = gongwen_hub::store::audit::verify(&log).unwrap();
    // accepted, delivered ×2, acknowledged.
    assert_eq!((v.entries, v.first_broken.clone()), (4, None), "{v:?}");

    // Edit entry 3 (change one hex digit of its receipt): the chain breaks there.
    let text = std::fs::read_to_string(&log).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut e: serde_json::Value = serde_json::from_str(&lines[2]).unwrap();
    let mut hex = e["receipt"].as_str().unwrap().to_owned();
    let i = hex.len() - 10;
    let c = if &hex[i..=i] == "0" { "1" } else { "0" };
    hex.replace_range(i..=i, c);
    e["receipt"] = serde_json::Value::String(hex);
    lines[2] = e.to_string();
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let v = gongwen_hub::store::audit::verify(&log).unwrap();
    assert_eq!(v.first_broken.as_ref().map(|b| b.0), Some(3), "{v:?}");

    // Dropping an entry is caught too.
    lines.remove(1);
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let v = gongwen_hub::store::audit::verify(&log).unwrap();
    assert_eq!(v.first_broken.as_ref().map(|b| b.0), Some(2), "{v:?}");
}

/// 通知 → 上报 → 汇总 (issue 15, point 6): a report asked of the group
/// `reporting` (four units), due in 1 h by the hub's clock. harbin-gov and
/// daqing-gov answer on time, qiqihar-gov late (after being urged),
/// mudanjiang-gov never. Each has the right reply state; the missing
/// answers are urged once, the answer stops the ladder, and only the one
/// never given is supervised, once; the report counts each unit right; and
/// `collect` writes a workbook that openpyxl reads with four rows and the
/// right cells (the hub's time and judgment, not the asking unit's clock).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_asked_of_four_units_is_tracked_escalated_and_collected() {
    const UNITS: [&str; 4] = ["harbin-gov", "daqing-gov", "qiqihar-gov", "mudanjiang-gov"];
    let w = world(&UNITS).await;
    w.net.sidecar(
        "prov-gov",
        "reporting",
        "报送通知.txt",
        "title = \"关于报送统计数据的通知\"\ndoc_type = \"通知\"\nreply = \"report\"\nreply_by = \"1h\"\n",
    );
    w.net.drop_file(
        "prov-gov",
        "reporting",
        "报送通知.txt",
        "请于1小时内报送。".as_bytes(),
    );
    let st = wait_all_delivered(&w.net.root("prov-gov"), 1).await;
    let doc = st[0].doc_id.clone();
    assert_eq!(st[0].recipients.len(), 4, "{st:#?}");
    let answer = async |unit: &str| {
        let report = w.net.path().join(format!("{unit}-统计.csv"));
        std::fs::write(&report, format!("{unit},1000\n")).unwrap();
        act(
            &w,
            unit,
            Request::Reply(Box::new(gongwen_agent::actions::reply::ReplyRequest {
                doc: doc.parse().unwrap(),
                files: vec![report],
                decision: None,
                note: Some(format!("{unit}报送")),
                title: None,
                supersedes: None,
                cc: Vec::new(),
                by: "赵六".into(),
            })),
        )
        .await
        .unwrap();
    };
    for unit in ["harbin-gov", "daqing-gov"] {
        answer(unit).await;
        let row = wait_until_row_of(&w, &doc, unit, |r| r["reply_state"] == "answered").await;
        // Answering signed for it first, in the hub's record too.
        assert_eq!(row["acknowledged_by"], "赵六", "{row}");
        assert!(
            row["acknowledged_at"].as_str() <= row["answered_at"].as_str(),
            "{row}"
        );
    }
    // The other two sign for it, and do not answer yet.
    for unit in ["qiqihar-gov", "mudanjiang-gov"] {
        sign_for(&w, unit, &doc, "钱七").await;
        wait_until_row_of(&w, &doc, unit, |r| {
            r["state"] == "acknowledged" && r["reply_state"] == "awaiting"
        })
        .await;
    }

    // Past the due time the two missing answers are urged, once each (the
    // hub's own escalator may run the step before escalate_now does).
    w.clock.advance(HOUR + Duration::from_secs(60));
    let h = &w.hub.handle;
    h.escalate_now().await.unwrap();
    assert_eq!(h.escalate_now().await.unwrap(), 0, "a step runs once");
    // Then qiqihar-gov answers, late; mudanjiang-gov never does.
    answer("qiqihar-gov").await;
    let late = wait_until_row_of(&w, &doc, "qiqihar-gov", |r| r["answered_at"].is_string()).await;
    assert_eq!(late["reply_state"], "late", "{late}");
    for (unit, state, urged) in [
        ("harbin-gov", "answered", 0),
        ("daqing-gov", "answered", 0),
        ("qiqihar-gov", "late", 1),
        ("mudanjiang-gov", "late", 1),
    ] {
        let row = hub_row(&w, &doc, unit).await;
        assert_eq!(
            (row["reply_state"].as_str(), row["urge_count"].as_u64()),
            (Some(state), Some(urged)),
            "{unit}: {row}"
        );
        assert_eq!(row["answered_at"].is_string(), unit != "mudanjiang-gov");
    }
    let notice = w
        .net
        .root("mudanjiang-gov")
        .join("inbox/prov-gov")
        .join(&doc)
        .join("催办通知-1.txt");
    let text = wait_until("the urging notice for the answer", || {
        std::fs::read_to_string(&notice).ok()
    })
    .await;
    assert!(
        text.contains("答复期限")
            && text.contains("答复（回复）")
            && !text.contains("gongwen-agent"),
        "{text}"
    );

    // Two hours later: the answer stopped qiqihar-gov's ladder; the
    // missing one is supervised, once, at the supervision office.
    w.clock.advance(2 * HOUR);
    h.escalate_now().await.unwrap();
    assert_eq!(h.escalate_now().await.unwrap(), 0, "a step runs once");
    let dir = w.net.root("prov-supervision").join("inbox/督办");
    let text = wait_until("the supervision notice for the missing answer", || {
        let f = gongwen_tests::first_file(&dir)?;
        std::fs::read_to_string(f).ok()
    })
    .await;
    assert!(
        text.contains("mudanjiang-gov") && text.contains(&doc),
        "{text}"
    );
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    assert_eq!(
        hub_row(&w, &doc, "qiqihar-gov").await["escalation_level"],
        0,
        "the late answer stopped its ladder"
    );
    // The answers are documents to prov-gov like any other: it signs for
    // them (or they would climb a ladder of their own).
    for unit in ["harbin-gov", "daqing-gov", "qiqihar-gov"] {
        let got = wait_inbox(&w.net.root("prov-gov"), unit, 1).await;
        let answer_id = got[0].file_name().unwrap().to_string_lossy().into_owned();
        sign_for(&w, "prov-gov", &answer_id, "王五").await;
        wait_until_row_of(&w, &answer_id, "prov-gov", |r| r["state"] == "acknowledged").await;
    }
    w.clock.advance(24 * 14 * HOUR);
    assert_eq!(h.escalate_now().await.unwrap(), 0, "the ladder has ended");
    let overdue = ask_hub(&w.hub.data_dir, &HubRequest::Overdue).await;
    let missing: Vec<&str> = overdue
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["missing"] == "answer")
        .map(|r| r["recipient"].as_str().unwrap())
        .collect();
    assert_eq!(missing, ["mudanjiang-gov"], "{overdue}");
    let report = ask_hub(
        &w.hub.data_dir,
        &HubRequest::Report {
            since: None,
            until: None,
        },
    )
    .await;
    let counts = |unit: &str| {
        let u = report["units"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["unit"] == unit)
            .unwrap_or_else(|| panic!("{unit} not in {report}"));
        [
            &u["answers_asked"],
            &u["answered_on_time"],
            &u["answered_late"],
            &u["answers_missing"],
        ]
        .map(|v| v.as_u64().unwrap())
    };
    assert_eq!(counts("harbin-gov"), [1, 1, 0, 0]);
    assert_eq!(counts("daqing-gov"), [1, 1, 0, 0]);
    assert_eq!(counts("qiqihar-gov"), [1, 0, 1, 0]);
    assert_eq!(counts("mudanjiang-gov"), [1, 0, 0, 1]);

    // 汇总 at the asking unit.
    let out = w.net.path().join("汇总");
    let done = act(
        &w,
        "prov-gov",
        Request::Collect {
            doc: doc.parse().unwrap(),
            out: out.clone(),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        (done["recipients"].as_u64(), done["answered"].as_u64()),
        (Some(4), Some(3)),
        "{done}"
    );
    for unit in ["harbin-gov", "daqing-gov", "qiqihar-gov"] {
        let folder = std::fs::read_dir(&out)
            .unwrap()
            .flatten()
            .find(|e| e.file_name().to_string_lossy().starts_with(unit))
            .unwrap_or_else(|| panic!("no folder for {unit}"))
            .path();
        assert_eq!(
            std::fs::read_to_string(folder.join(format!("{unit}-统计.csv"))).unwrap(),
            format!("{unit},1000\n")
        );
        assert!(folder.join("metadata.json").exists());
    }
    let csv = std::fs::read_to_string(out.join("汇总表.csv")).unwrap();
    assert!(csv.starts_with('\u{feff}'), "no BOM");
    assert_eq!(csv.lines().count(), 5, "{csv}");

    // The workbook as an independent reader sees it.
    use gongwen_tests::tools;
    if !tools::require(
        "openpyxl",
        "python3-openpyxl",
        tools::python_has("openpyxl"),
    ) {
        return;
    }
    let v = gongwen_tests::read_summary_workbook(&out.join("汇总表.xlsx"));
    assert_eq!(v["header"][0], "单位代码", "{v}");
    assert_eq!(v["header"][5], "是否按时", "{v}");
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "{v}");
    let row = |id: &str| rows.iter().position(|r| r[0] == id).unwrap();
    for (unit, timely) in [
        ("harbin-gov", "按时"),
        ("daqing-gov", "按时"),
        ("qiqihar-gov", "逾期"),
        ("mudanjiang-gov", "未报送"),
    ] {
        let r = &rows[row(unit)];
        assert_eq!(r[2], "已签收", "{unit}: {r}");
        assert_eq!(r[5], timely, "{unit}: {r}");
        let red = v["red"][row(unit)]
            .as_str()
            .unwrap_or("")
            .ends_with("FF0000");
        assert_eq!(red, unit == "mudanjiang-gov", "{unit}: {v}");
        if unit == "mudanjiang-gov" {
            assert!(r[4].as_str().unwrap_or("").is_empty(), "{r}");
            assert!(r[8].as_str().unwrap_or("").is_empty(), "{r}");
        } else {
            assert_eq!(r[7], format!("{unit}报送"), "{r}");
            assert_eq!(r[8], format!("{unit}-统计.csv"), "{r}");
        }
    }
    // The time of the late answer is the hub's (its clock is an hour
    // ahead of this machine's here), in Beijing time.
    let at = gongwen_common::timefmt::parse_rfc3339(late["answered_at"].as_str().unwrap()).unwrap();
    let beijing =
        gongwen_common::timefmt::beijing((at.unix_timestamp_nanos() / 1_000_000) as i64, true);
    assert_eq!(rows[row("qiqihar-gov")][4], beijing.as_str(), "{v}");
}
