//! Document exchange end to end: outbox → hub → inbox, signed, encrypted,
//! with receipts back at the sender. Real hub, real agents, real files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use gongwen_common::Role;
use gongwen_tests::{Net, agent_status, inbox_docs, wait_all_delivered, wait_inbox, wait_until};

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Every byte of every file under `dir`.
fn all_bytes(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(b) = std::fs::read(&p) {
                out.push((p, b));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_file_reaches_every_group_member_byte_identical_with_receipts() {
    let net = Net::new();
    for id in ["prov-gov", "harbin-gov", "daqing-gov"] {
        net.issue(id, Role::Node);
    }
    let hub = net.start_hub().await;
    let _prov = net.start_agent("prov-gov", hub.addr);
    let _harbin = net.start_agent("harbin-gov", hub.addr);
    let _daqing = net.start_agent("daqing-gov", hub.addr);
    hub.wait_ready(&["prov-gov", "harbin-gov", "daqing-gov"])
        .await;

    let marker = b"MARKER-7f3a9c-PLAINTEXT-MUST-NOT-BE-AT-THE-HUB";
    let mut body = "关于做好冬季安全生产工作的通知\n".repeat(1000).into_bytes();
    body.extend_from_slice(marker);
    let name = "关于做好冬季安全生产工作的通知.txt";
    net.sidecar(
        "prov-gov",
        "cities",
        name,
        "doc_number = \"黑政发〔2026〕12号\"\ndoc_type = \"通知\"\nurgency = \"urgent\"\n",
    );
    net.drop_file("prov-gov", "cities", name, &body);

    for member in ["harbin-gov", "daqing-gov"] {
        let docs = wait_inbox(&net.root(member), "prov-gov", 1).await;
        assert_eq!(docs.len(), 1);
        let got = std::fs::read(docs[0].join(name)).unwrap();
        assert_eq!(got, body, "{member} got different bytes");
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(docs[0].join("metadata.json")).unwrap()).unwrap();
        assert_eq!(meta["title"], "关于做好冬季安全生产工作的通知");
        assert_eq!(meta["doc_number"], "黑政发〔2026〕12号");
        assert_eq!(meta["urgency"], "urgent");
        assert_eq!(meta["sender"], "prov-gov");
    }

    let status = wait_all_delivered(&net.root("prov-gov"), 1).await;
    let doc = &status[0];
    let mut who: Vec<_> = doc.recipients.iter().map(|r| r.recipient.clone()).collect();
    who.sort();
    assert_eq!(who, ["daqing-gov", "harbin-gov"]);
    assert!(doc.recipients.iter().all(|r| r.delivered_at.is_some()));

    // The drop left the outbox and was filed under sent/<doc_id>/.
    let outbox = net.root("prov-gov").join("outbox/cities");
    assert!(!outbox.join(name).exists());
    let sent = net.root("prov-gov").join("sent").join(&doc.doc_id);
    assert_eq!(std::fs::read(sent.join(name)).unwrap(), body);

    // The hub's disk never held the plaintext.
    for (path, bytes) in all_bytes(&hub.data_dir) {
        assert!(
            !contains(&bytes, marker),
            "plaintext marker found in {}",
            path.display()
        );
        assert!(
            !contains(&bytes, "冬季安全生产工作的通知\n关于".as_bytes()),
            "plaintext in {}",
            path.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_recipient_ends_in_failed_with_a_readable_reason() {
    let net = Net::new();
    net.issue("prov-gov", Role::Node);
    let hub = net.start_hub().await;
    let _prov = net.start_agent("prov-gov", hub.addr);
    hub.wait_ready(&["prov-gov"]).await;
    net.drop_file("prov-gov", "nowhere-gov", "函.txt", b"hello");
    let failed = net.root("prov-gov").join("failed");
    let reason = wait_until("the drop in failed/ with its reason", || {
        std::fs::read_to_string(failed.join("函.txt.error.txt")).ok()
    })
    .await;
    assert!(
        reason.contains("unknown recipient: nowhere-gov"),
        "{reason}"
    );
    assert_eq!(std::fs::read(failed.join("函.txt")).unwrap(), b"hello");
    assert!(agent_status(&net.root("prov-gov")).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recipient_offline_for_the_send_gets_it_when_it_connects() {
    let net = Net::new();
    net.issue("prov-gov", Role::Node);
    net.issue("harbin-gov", Role::Node);
    let hub = net.start_hub().await;
    let _prov = net.start_agent("prov-gov", hub.addr);
    let harbin = net.start_agent("harbin-gov", hub.addr);
    hub.wait_ready(&["prov-gov", "harbin-gov"]).await;
    harbin.stop().await;
    hub.wait_nodes("harbin-gov offline", |r| {
        r.iter().any(|n| n.id == "harbin-gov" && !n.connected)
    })
    .await;

    net.drop_file("prov-gov", "harbin-gov", "报告.txt", b"offline delivery");
    // Accepted by the hub while harbin-gov is away.
    wait_until("the hub's accepted receipt at the sender", || {
        std::fs::read_dir(net.root("prov-gov").join("sent"))
            .ok()?
            .next()
            .map(|_| ())
    })
    .await;
    assert!(inbox_docs(&net.root("harbin-gov"), "prov-gov").is_empty());

    let _harbin = net.start_agent("harbin-gov", hub.addr);
    let docs = wait_inbox(&net.root("harbin-gov"), "prov-gov", 1).await;
    assert_eq!(
        std::fs::read(docs[0].join("报告.txt")).unwrap(),
        b"offline delivery"
    );
    wait_all_delivered(&net.root("prov-gov"), 1).await;
}
