//! Agents rebuild a hub that lost its data: the embedded hub's data
//! directory is wiped while a recipient is offline; the hub starts with an
//! empty store (a new generation, said in its welcome); the sender offers
//! again every document not yet answered, the recipient answers what it
//! already holds with its first receipts and gives its answers again, and
//! nothing is lost or doubled. Real hub, real agents, real files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use gongwen_agent::front::control::Request;
use gongwen_common::Role;
use gongwen_tests::{Net, agent_status, ask_agent, wait_all_delivered, wait_inbox, wait_until};

async fn wait_state(net: &Net, doc: &str, state: &str) {
    let root = net.root("prov-gov");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let st = agent_status(&root).await;
        let now = st
            .iter()
            .find(|d| d.doc_id == doc)
            .map(|d| d.recipients[0].state.to_string());
        if now.as_deref() == Some(state) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{doc} never reached {state} at the sender: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn sent_doc(net: &Net, title: &str) -> String {
    let sent = net.root("prov-gov").join("sent");
    std::fs::read_dir(sent)
        .unwrap()
        .flatten()
        .find(|e| e.path().join(format!("{title}.txt")).exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .unwrap()
}

async fn ack(net: &Net, doc: &str, by: &str) {
    ask_agent(
        &net.root("harbin-gov"),
        &Request::Ack {
            doc: doc.parse().unwrap(),
            by: by.into(),
        },
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_hub_is_rebuilt_by_its_agents() {
    let net = Net::new();
    net.issue("prov-gov", Role::Node);
    net.issue("harbin-gov", Role::Node);
    let hub = net.start_hub().await;
    let addr = hub.addr;
    let prov = net.start_agent("prov-gov", addr);
    let harbin = net.start_agent("harbin-gov", addr);
    hub.wait_ready(&["prov-gov", "harbin-gov"]).await;

    // One: delivered and signed for. Two: delivered, not signed for.
    net.drop_file("prov-gov", "harbin-gov", "第一件.txt", b"one");
    wait_all_delivered(&net.root("prov-gov"), 1).await;
    let one = sent_doc(&net, "第一件");
    ack(&net, &one, "张三").await;
    wait_state(&net, &one, "acknowledged").await;
    net.drop_file("prov-gov", "harbin-gov", "第二件.txt", b"two");
    wait_inbox(&net.root("harbin-gov"), "prov-gov", 2).await;
    let two = wait_until("the second filed as sent", || {
        std::panic::catch_unwind(|| sent_doc(&net, "第二件")).ok()
    })
    .await;
    wait_state(&net, &two, "delivered").await;

    // Three: sent while harbin-gov is offline, so only the hub has it.
    harbin.stop().await;
    hub.wait_nodes("harbin-gov offline", |r| {
        r.iter().any(|n| n.id == "harbin-gov" && !n.connected)
    })
    .await;
    net.drop_file("prov-gov", "harbin-gov", "第三件.txt", b"three");
    wait_until("the third accepted", || {
        std::fs::read_dir(net.root("prov-gov").join("sent"))
            .ok()
            .map(|d| d.count())
            .filter(|n| *n == 3)
    })
    .await;
    let three = sent_doc(&net, "第三件");

    // The hub's disk is lost: it starts again with nothing.
    let data_dir = hub.data_dir.clone();
    hub.stop().await;
    std::fs::remove_dir_all(&data_dir).unwrap();
    let hub = net.start_hub_on(addr).await;

    // harbin-gov comes back and still gets the third; the first two are
    // not doubled; the sender's view completes.
    let harbin = net.start_agent("harbin-gov", addr);
    let docs = wait_inbox(&net.root("harbin-gov"), "prov-gov", 3).await;
    assert_eq!(docs.len(), 3, "{docs:?}");
    assert!(
        docs.iter()
            .any(|d| d.ends_with(&three) && d.join("第三件.txt").exists())
    );
    wait_state(&net, &three, "delivered").await;
    // The rebuilt hub took the second again: signing for it works.
    ack(&net, &two, "李四").await;
    wait_state(&net, &two, "acknowledged").await;
    wait_state(&net, &one, "acknowledged").await;

    // Now the hub loses an answer before the sender heard of it: the
    // sender is offline when harbin-gov signs for the third, then the disk
    // is lost again.
    prov.stop().await;
    ack(&net, &three, "王五").await;
    let data_dir = hub.data_dir.clone();
    hub.stop().await;
    harbin.stop().await;
    std::fs::remove_dir_all(&data_dir).unwrap();
    let hub = net.start_hub_on(addr).await;
    let _prov = net.start_agent("prov-gov", addr);
    let _harbin = net.start_agent("harbin-gov", addr);
    // The sender offers the third again; harbin-gov, holding it, answers
    // with its first receipt and gives its answer again.
    wait_state(&net, &three, "acknowledged").await;
    assert_eq!(
        wait_inbox(&net.root("harbin-gov"), "prov-gov", 3)
            .await
            .len(),
        3
    );
    hub.stop().await;
}
