//! The second round of hardening (issue 21), each finding tried the way a
//! hostile client or an unlucky clerk would: answers given at the same
//! moment, a console flooded from the LAN, files still being copied, a
//! group with a revoked member, a unit that floods an offline one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use gongwen_agent::store::ReceivedState;
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
    let (rec, _) = u.harbin.ctx.store.received(doc).unwrap().unwrap();
    assert_eq!(rec.state, expected, "the unit's record of {doc}");
    let receipt = u.harbin.ctx.store.answer(doc).unwrap().unwrap();
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
            &gongwen_hub::control::Request::Status { doc },
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
        assert!(refused.text().contains("already"), "{}", refused.text());
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
        let (_, token) = gongwen_agent::console::accounts::Accounts::edit(&accounts, |a| {
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
        assert!(refused.contains("already"), "{refused}");
        let expected = if ack.0 {
            ReceivedState::Acknowledged
        } else {
            ReceivedState::Rejected
        };
        one_answer_everywhere(&u, *doc, expected).await;
    }
}
