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
        // The file digest, in the deployment's suite.
        let suite = net.suite();
        assert_eq!(
            meta["digest_algorithm"],
            if suite.as_str() == "gm" {
                "sm3"
            } else {
                "sha256"
            }
        );
        assert_eq!(
            meta["files"][0]["sha256"],
            gongwen_common::pki::serial_hex(&suite.digest(&body))
        );
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
        reason.contains("交换中心不认识收文单位：nowhere-gov"),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_killed_after_accepted_and_restarted_still_delivers() {
    let net = Net::new();
    net.issue("prov-gov", Role::Node);
    net.issue("harbin-gov", Role::Node);
    let mut hub = gongwen_tests::HubProcess::start(&net, "127.0.0.1:0".parse().unwrap()).await;
    let addr = hub.addr;
    let _prov = net.start_agent("prov-gov", addr);
    let harbin = net.start_agent("harbin-gov", addr);
    // Both publish their keys; then the recipient goes away.
    hub.wait_units(2).await;
    harbin.stop().await;

    net.drop_file("prov-gov", "harbin-gov", "请示.txt", b"survives SIGKILL");
    wait_until("accepted by the hub", || {
        std::fs::read_dir(net.root("prov-gov").join("sent"))
            .ok()?
            .next()
            .map(|_| ())
    })
    .await;
    hub.kill9();
    let _hub = gongwen_tests::HubProcess::start(&net, addr).await;
    let _harbin = net.start_agent("harbin-gov", addr);
    let docs = wait_inbox(&net.root("harbin-gov"), "prov-gov", 1).await;
    assert_eq!(
        std::fs::read(docs[0].join("请示.txt")).unwrap(),
        b"survives SIGKILL"
    );
    wait_all_delivered(&net.root("prov-gov"), 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_upload_after_a_lost_accepted_gives_one_inbox_copy() {
    use gongwen_common::wire::{ErrorCode, Message};
    let net = Net::new();
    net.issue("prov-gov", Role::Node);
    net.issue("harbin-gov", Role::Node);
    let hub = net.start_hub().await;
    let _harbin = net.start_agent("harbin-gov", hub.addr);
    hub.wait_ready(&["harbin-gov"]).await;
    let raw =
        gongwen_tests::raw::RawAgent::connect(&net.path().join("prov-gov"), "prov-gov", hub.addr)
            .await;
    let doc_id = gongwen_common::DocId::generate();
    let doc = raw
        .seal(doc_id, &["harbin-gov"], "函.txt", b"exactly once")
        .await;
    let first = raw.upload(&doc).await;
    let Message::Accepted { receipt } = &first else {
        panic!("{first:?}")
    };
    // The sender never saw that answer and sends the same document again.
    let again = raw.upload(&doc).await;
    assert_eq!(
        again,
        Message::Accepted {
            receipt: receipt.clone()
        },
        "a retry gets the original receipt"
    );
    let docs = wait_inbox(&net.root("harbin-gov"), "prov-gov", 1).await;
    assert_eq!(
        std::fs::read(docs[0].join("函.txt")).unwrap(),
        b"exactly once"
    );
    // Once more after delivery (the hub has recorded it): still one copy.
    // The hub's record keeps the copy delivered (nothing queued again), and
    // a document sent after it arrives alone.
    let hub_state = || async {
        let status = gongwen_tests::ask_hub(
            &hub.data_dir,
            &gongwen_hub::ops::control::Request::Status { doc: doc_id },
        )
        .await;
        status["recipients"][0]["state"].as_str().map(str::to_owned)
    };
    let deadline = tokio::time::Instant::now() + gongwen_tests::WAIT;
    while hub_state().await.as_deref() != Some("delivered") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the hub never recorded the delivery"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(matches!(raw.upload(&doc).await, Message::Accepted { .. }));
    assert_eq!(hub_state().await.as_deref(), Some("delivered"));
    let marker = raw
        .seal(
            gongwen_common::DocId::generate(),
            &["harbin-gov"],
            "标记.txt",
            b"after",
        )
        .await;
    assert!(matches!(
        raw.upload(&marker).await,
        Message::Accepted { .. }
    ));
    assert_eq!(
        wait_inbox(&net.root("harbin-gov"), "prov-gov", 2)
            .await
            .len(),
        2
    );

    // The same id for different content is refused.
    let other = raw
        .seal(doc_id, &["harbin-gov"], "函.txt", b"something else")
        .await;
    match raw.upload(&other).await {
        Message::Error { code, .. } => assert_eq!(code, ErrorCode::Conflict),
        m => panic!("{m:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_spool_file_is_quarantined_at_the_recipient() {
    let net = Net::new();
    net.issue("prov-gov", Role::Node);
    net.issue("harbin-gov", Role::Node);
    let hub = net.start_hub().await;
    let _prov = net.start_agent("prov-gov", hub.addr);
    let harbin = net.start_agent("harbin-gov", hub.addr);
    hub.wait_ready(&["prov-gov", "harbin-gov"]).await;
    harbin.stop().await;
    net.drop_file("prov-gov", "harbin-gov", "纪要.txt", &vec![b'x'; 100_000]);
    let spool = hub.data_dir.join("spool");
    let ct = wait_until("the ciphertext in the hub's spool", || {
        std::fs::read_dir(&spool)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "ct"))
    })
    .await;
    let mut bytes = std::fs::read(&ct).unwrap();
    bytes[5000] ^= 0x20;
    std::fs::write(&ct, &bytes).unwrap();

    let _harbin = net.start_agent("harbin-gov", hub.addr);
    let quarantine = net.root("harbin-gov").join("quarantine");
    let reason = wait_until("a quarantine reason", || {
        let dir = std::fs::read_dir(&quarantine)
            .ok()?
            .flatten()
            .next()?
            .path();
        std::fs::read_to_string(dir.join("reason.txt")).ok()
    })
    .await;
    assert!(reason.contains("没有通过验证，没有放进收文"), "{reason}");
    assert!(reason.contains("altered"), "{reason}");
    // The evidence is the content as the hub sent it (one chunk, the one
    // that failed), not what decrypting it left in memory.
    let kept = std::fs::read_dir(&quarantine)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path()
        .join("content.bin");
    assert!(
        std::fs::read(&kept).unwrap() == bytes,
        "content.bin is not the content as received"
    );
    assert!(inbox_docs(&net.root("harbin-gov"), "prov-gov").is_empty());
    let deadline = tokio::time::Instant::now() + gongwen_tests::WAIT;
    loop {
        let st = agent_status(&net.root("prov-gov")).await;
        if st
            .first()
            .is_some_and(|d| d.recipients[0].state == "quarantined")
        {
            assert!(
                st[0].recipients[0]
                    .reason
                    .as_deref()
                    .unwrap_or("")
                    .contains("altered")
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "sender never learned: {st:#?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_still_growing_is_not_sent_until_complete() {
    use std::io::Write;
    let net = Net::new();
    net.issue("prov-gov", Role::Node);
    net.issue("harbin-gov", Role::Node);
    let hub = net.start_hub().await;
    let _prov = net.start_agent("prov-gov", hub.addr);
    let _harbin = net.start_agent("harbin-gov", hub.addr);
    hub.wait_ready(&["prov-gov", "harbin-gov"]).await;
    // Written in place, slowly, under its final name (settle is 100 ms).
    let dir = net.root("prov-gov").join("outbox/harbin-gov");
    std::fs::create_dir_all(&dir).unwrap();
    let mut f = std::fs::File::create(dir.join("slow.txt")).unwrap();
    let mut expected = Vec::new();
    for i in 0..25u8 {
        let piece = vec![b'a' + (i % 26); 1000];
        f.write_all(&piece).unwrap();
        f.flush().unwrap();
        expected.extend_from_slice(&piece);
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        assert!(
            inbox_docs(&net.root("harbin-gov"), "prov-gov").is_empty(),
            "sent while still being written"
        );
    }
    drop(f);
    let docs = wait_inbox(&net.root("harbin-gov"), "prov-gov", 1).await;
    assert_eq!(std::fs::read(docs[0].join("slow.txt")).unwrap(), expected);
}

/// Peak resident memory of this process (all of hub and agents run here).
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn hash_file(path: &std::path::Path) -> [u8; 32] {
    use std::io::Read;
    let mut f = std::fs::File::open(path).unwrap();
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// Drop `name` from prov-gov for harbin-gov: `size` bytes that do not
/// compress, written under a temporary name (in 1 MiB pieces, so the test
/// never holds it all) and renamed into place. Returns its SHA-256.
fn drop_noise(net: &Net, name: &str, size: usize) -> [u8; 32] {
    use std::io::Write;
    let dir = net.root("prov-gov").join("outbox/harbin-gov");
    std::fs::create_dir_all(&dir).unwrap();
    let tmp = dir.join(".big.part");
    let mut f = std::fs::File::create(&tmp).unwrap();
    let mut block = vec![0u8; 1 << 20];
    let mut x: u32 = 0x9e37_79b9;
    for _ in 0..size / block.len() {
        for b in block.iter_mut() {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
        f.write_all(&block).unwrap();
    }
    drop(f);
    let expected = hash_file(&tmp);
    std::fs::rename(&tmp, dir.join(name)).unwrap();
    expected
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_mib_document_goes_through_with_bounded_memory_and_resumes_after_a_cut() {
    const SIZE: usize = 64 << 20;
    let net = Net::new();
    net.issue("prov-gov", Role::Node);
    net.issue("harbin-gov", Role::Node);
    let hub = net.start_hub().await;
    let addr = hub.addr;
    let _prov = net.start_agent("prov-gov", addr);
    let _harbin = net.start_agent("harbin-gov", addr);
    hub.wait_ready(&["prov-gov", "harbin-gov"]).await;
    let before = peak_rss_kib();

    let expected = drop_noise(&net, "大文件.bin", SIZE);
    let started = std::time::Instant::now();

    // Cut the transfer once the hub holds at least 24 MiB of it.
    let partial_dir = hub.data_dir.join("spool/partial");
    let cut_at = wait_until("the upload to pass 24 MiB", || {
        let len = std::fs::read_dir(&partial_dir)
            .ok()?
            .flatten()
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .max()?;
        (len >= 24 << 20).then_some(len)
    })
    .await;
    hub.stop().await;
    let hub = net.start_hub_on(addr).await;

    let docs = wait_inbox(&net.root("harbin-gov"), "prov-gov", 1).await;
    assert_eq!(
        hash_file(&docs[0].join("大文件.bin")),
        expected,
        "the 64 MiB file differs"
    );
    wait_all_delivered(&net.root("prov-gov"), 1).await;
    let elapsed = started.elapsed();

    let stats =
        gongwen_hub::ops::control::query(&hub.data_dir, &gongwen_hub::ops::control::Request::Stats)
            .await
            .unwrap();
    assert_eq!(stats["uploads_resumed"], 1, "{stats}");
    // The restarted hub made two writes durable (the accept and the
    // delivered receipt), through the group committer.
    assert_eq!(stats["writes_committed"], 2, "{stats}");
    let commits = stats["store_commits"].as_u64().unwrap();
    assert!((1..=2).contains(&commits), "{stats}");
    let kept = stats["bytes_not_resent"].as_u64().unwrap();
    assert!(
        kept >= 8 << 20,
        "resumed from byte {kept} only (cut at {cut_at}): {stats}"
    );

    // Streaming keeps memory far below the document's size.
    let grown_mib = (peak_rss_kib().saturating_sub(before)) / 1024;
    eprintln!(
        "64 MiB document: cut at {} MiB, resumed from {} MiB, {:.1} s end to end, peak RSS grew {} MiB",
        cut_at >> 20,
        kept >> 20,
        elapsed.as_secs_f64(),
        grown_mib
    );
    assert!(
        grown_mib < 48,
        "peak memory grew by {grown_mib} MiB for a 64 MiB document"
    );
}

/// The recipient decrypts while it downloads; a download cut after a
/// checkpoint resumes there, hashing the files it kept again first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_cut_at_the_recipient_resumes_from_its_checkpoint_and_arrives_whole() {
    cut_a_download_at_the_recipient(false).await;
}

/// Kept files that were changed while the recipient was down are not
/// trusted: the download starts over, and the document still arrives whole
/// (it is not quarantined: the damage is local, not the sender's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_whose_kept_part_was_damaged_starts_over_and_arrives_whole() {
    cut_a_download_at_the_recipient(true).await;
}

/// One attempt at a time receives a document: a retry that arrives on a
/// new connection while the broken attempt's file work still runs waits
/// for it (or gives up, and the hub retries later); other documents go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_attempt_to_receive_the_same_document_waits_for_the_first() {
    let net = Net::new();
    net.issue("harbin-gov", Role::Node);
    let hub = net.start_hub().await;
    let harbin = net.start_agent("harbin-gov", hub.addr);
    let holds = harbin.parts.holds().clone();
    let (doc, other) = (
        gongwen_common::DocId::generate(),
        gongwen_common::DocId::generate(),
    );
    let short = std::time::Duration::from_millis(50);
    let first = holds.hold(doc, short).await;
    assert!(first.is_some(), "nobody held the document");
    assert!(
        holds.hold(doc, short).await.is_none(),
        "a second attempt got in while the first held the document"
    );
    assert!(
        holds.hold(other, short).await.is_some(),
        "another document was held up"
    );
    let waiter = {
        let holds = holds.clone();
        tokio::spawn(async move { holds.hold(doc, gongwen_tests::WAIT).await.map(|_| ()) })
    };
    drop(first);
    let second = gongwen_tests::bounded("the second attempt", waiter).await;
    assert!(
        matches!(second, Ok(Some(()))),
        "the second attempt did not get the document once the first let go: {second:?}"
    );
    drop(holds);
    harbin.stop().await;
}

async fn cut_a_download_at_the_recipient(damage_kept_part: bool) {
    const SIZE: usize = 40 << 20;
    let net = Net::new();
    net.issue("prov-gov", Role::Node);
    net.issue("harbin-gov", Role::Node);
    let hub = net.start_hub().await;
    let _prov = net.start_agent("prov-gov", hub.addr);
    let harbin = net.start_agent("harbin-gov", hub.addr);
    hub.wait_ready(&["prov-gov", "harbin-gov"]).await;

    let expected = drop_noise(&net, "报告.bin", SIZE);

    // Stop the recipient once it has made part of the download durable.
    let incoming = net.root("harbin-gov").join("state/incoming");
    let (offset_file, checkpoint) = wait_until("the recipient's first download checkpoint", || {
        std::fs::read_dir(&incoming)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "offset"))
            .find_map(|p| {
                // "<bytes> <digest>"
                let record = std::fs::read_to_string(&p).ok()?;
                let at = record.split_whitespace().next()?.parse::<u64>().ok()?;
                Some((p, at))
            })
    })
    .await;
    harbin.stop().await;
    if damage_kept_part {
        let kept = offset_file.with_extension("tmp").join("报告.bin");
        let mut bytes = std::fs::read(&kept).unwrap();
        bytes[1000] ^= 0x01;
        std::fs::write(&kept, bytes).unwrap();
    }
    let _harbin = net.start_agent("harbin-gov", hub.addr);

    let docs = wait_inbox(&net.root("harbin-gov"), "prov-gov", 1).await;
    assert_eq!(
        hash_file(&docs[0].join("报告.bin")),
        expected,
        "the resumed download decrypted to a different file"
    );
    wait_all_delivered(&net.root("prov-gov"), 1).await;
    let stats =
        gongwen_hub::ops::control::query(&hub.data_dir, &gongwen_hub::ops::control::Request::Stats)
            .await
            .unwrap();
    if damage_kept_part {
        assert_eq!(stats["deliveries_resumed"], 0, "{stats}");
    } else {
        assert_eq!(stats["deliveries_resumed"], 1, "{stats}");
        let kept = stats["bytes_not_redelivered"].as_u64().unwrap();
        assert!(
            kept >= checkpoint,
            "resumed from byte {kept}, before the checkpoint at {checkpoint}: {stats}"
        );
    }
    // Nothing of the download is left behind.
    let left: Vec<_> = std::fs::read_dir(&incoming)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "left in state/incoming: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_on_the_command_line_delivers_main_text_and_attachment_and_hub_status_shows_it() {
    let net = Net::new();
    net.issue("prov-gov", Role::Node);
    net.issue("harbin-gov", Role::Node);
    let hub = net.start_hub().await;
    let _prov = net.start_agent("prov-gov", hub.addr);
    let _harbin = net.start_agent("harbin-gov", hub.addr);
    hub.wait_ready(&["prov-gov", "harbin-gov"]).await;
    let src = net.path().join("docs");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("正文.txt"), "关于召开全省政务工作会议的通知").unwrap();
    std::fs::write(
        src.join("附件1 参会回执.xlsx"),
        b"\x50\x4b\x03\x04 fake xlsx",
    )
    .unwrap();
    let config = net.path().join("prov-gov.toml");
    let out = tokio::process::Command::new(gongwen_tests::bin("gongwen-agent"))
        .arg("send")
        .arg(src.join("正文.txt"))
        .arg(src.join("附件1 参会回执.xlsx"))
        .args([
            "--to",
            "harbin-gov",
            "--title",
            "关于召开全省政务工作会议的通知",
            "--doc-type",
            "通知",
            "--urgency",
            "特急",
            "--config",
        ])
        .arg(&config)
        .output();
    let out = gongwen_tests::bounded("gongwen-agent send", out)
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc_id = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(String::from_utf8_lossy(&out.stderr).contains("accepted by the hub"));
    // The originals stay where they were.
    assert!(src.join("正文.txt").exists() && src.join("附件1 参会回执.xlsx").exists());

    let docs = wait_inbox(&net.root("harbin-gov"), "prov-gov", 1).await;
    assert!(docs[0].ends_with(&doc_id));
    assert_eq!(
        std::fs::read_to_string(docs[0].join("正文.txt")).unwrap(),
        "关于召开全省政务工作会议的通知"
    );
    assert_eq!(
        std::fs::read(docs[0].join("附件1 参会回执.xlsx")).unwrap(),
        b"\x50\x4b\x03\x04 fake xlsx"
    );
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(docs[0].join("metadata.json")).unwrap()).unwrap();
    assert_eq!(meta["files"][0]["kind"], "main");
    assert_eq!(meta["files"][1]["kind"], "attachment");
    assert_eq!(meta["urgency"], "extra-urgent");
    wait_all_delivered(&net.root("prov-gov"), 1).await;

    // The hub's view: metadata and per-recipient state, never content.
    let v = gongwen_hub::ops::control::query(
        &hub.data_dir,
        &gongwen_hub::ops::control::Request::Status {
            doc: doc_id.parse().unwrap(),
        },
    )
    .await
    .unwrap();
    assert_eq!(v["title"], "关于召开全省政务工作会议的通知");
    assert_eq!(v["sender"], "prov-gov");
    let r = &v["recipients"][0];
    assert_eq!(r["recipient"], "harbin-gov");
    assert_eq!(r["state"], "delivered");
    assert!(r["delivered_at"].is_string());
    assert_eq!(r["receipts"], serde_json::json!(["delivered"]));
    assert_eq!(
        v["content_removed"], true,
        "ciphertext is dropped once everyone has it"
    );

    // A refusal comes back as a clear error and a non-zero exit.
    let out = tokio::process::Command::new(gongwen_tests::bin("gongwen-agent"))
        .arg("send")
        .arg(src.join("正文.txt"))
        .args(["--to", "nowhere-gov", "--config"])
        .arg(&config)
        .output();
    let out = gongwen_tests::bounded("gongwen-agent send", out)
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("交换中心不认识收文单位：nowhere-gov"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_claiming_another_sender_is_refused_by_the_hub() {
    use gongwen_common::wire::{ErrorCode, Message};
    let net = Net::new();
    for id in ["prov-gov", "harbin-gov", "daqing-gov"] {
        net.issue(id, Role::Node);
    }
    let hub = net.start_hub().await;
    let _harbin = net.start_agent("harbin-gov", hub.addr);
    hub.wait_ready(&["harbin-gov"]).await;
    let raw =
        gongwen_tests::raw::RawAgent::connect(&net.path().join("prov-gov"), "prov-gov", hub.addr)
            .await;
    let forged_id = gongwen_common::DocId::generate();
    let forged = raw
        .seal_as(
            "daqing-gov",
            forged_id,
            &["harbin-gov"],
            "假.txt",
            b"forged",
        )
        .await;
    match raw.upload(&forged).await {
        Message::Error { code, message } => {
            assert_eq!(code, ErrorCode::NotTheSender, "{message}");
            assert!(
                message.contains("daqing-gov") && message.contains("prov-gov"),
                "{message}"
            );
        }
        m => panic!("{m:?}"),
    }
    // The hub kept nothing of it, and the honest document sent after it
    // arrives alone.
    let kept = gongwen_hub::ops::control::query(
        &hub.data_dir,
        &gongwen_hub::ops::control::Request::Status { doc: forged_id },
    )
    .await;
    assert!(
        kept.is_err(),
        "the hub recorded the forged document: {kept:?}"
    );
    let marker = raw
        .seal(
            gongwen_common::DocId::generate(),
            &["harbin-gov"],
            "标记.txt",
            b"honest",
        )
        .await;
    assert!(matches!(
        raw.upload(&marker).await,
        Message::Accepted { .. }
    ));
    wait_inbox(&net.root("harbin-gov"), "prov-gov", 1).await;
    assert!(inbox_docs(&net.root("harbin-gov"), "daqing-gov").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_the_sender_failed_to_take_is_pushed_again() {
    use gongwen_common::receipt::{Receipt, ReceiptKind};
    let net = Net::new();
    net.issue("prov-gov", Role::Node);
    net.issue("harbin-gov", Role::Node);
    let hub = net.start_hub().await;
    let _harbin = net.start_agent("harbin-gov", hub.addr);
    hub.wait_ready(&["harbin-gov"]).await;
    let raw =
        gongwen_tests::raw::RawAgent::connect(&net.path().join("prov-gov"), "prov-gov", hub.addr)
            .await;
    let (tx, mut receipts) = tokio::sync::mpsc::unbounded_channel();
    // The sender is busy the first time the hub hands it the receipt.
    raw.serve_pushes(1, tx);
    let doc = raw
        .seal(
            gongwen_common::DocId::generate(),
            &["harbin-gov"],
            "回执.txt",
            b"x",
        )
        .await;
    assert!(matches!(
        raw.upload(&doc).await,
        gongwen_common::wire::Message::Accepted { .. }
    ));
    let bytes = gongwen_tests::bounded("the delivered receipt, pushed again", receipts.recv())
        .await
        .unwrap();
    let (r, _) = Receipt::verify(&bytes, None, time::OffsetDateTime::now_utc()).unwrap();
    assert_eq!(
        (r.kind, r.recipient.as_str()),
        (ReceiptKind::Delivered, "harbin-gov")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_while_the_hub_is_unreachable_says_the_document_is_queued() {
    let net = Net::new();
    net.issue("prov-gov", Role::Node);
    // A UDP port where no hub answers.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let _prov = net.start_agent("prov-gov", silent.local_addr().unwrap());
    let file = net.path().join("待发.txt");
    std::fs::write(&file, b"queued").unwrap();
    let out = tokio::process::Command::new(gongwen_tests::bin("gongwen-agent"))
        .arg("send")
        .arg(&file)
        .args(["--to", "harbin-gov", "--no-wait", "--config"])
        .arg(net.path().join("prov-gov.toml"))
        .output();
    let out = gongwen_tests::bounded("gongwen-agent send", out)
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not connected to the hub") && err.contains("queued"),
        "{err}"
    );
    // It is in the spool, waiting, not lost.
    let st = agent_status(&net.root("prov-gov")).await;
    assert_eq!(st.len(), 1);
    assert_eq!(st[0].stage, "sending");
}

/// The outbox scan opens the outbox, which is itself a file-system event;
/// reacting to it made every idle agent rescan in a loop (195 agents kept
/// two cores busy doing nothing). An idle agent scans once and waits; a
/// drop still wakes it at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_agent_does_not_rescan_its_outbox_in_a_loop() {
    let net = Net::new();
    for id in ["prov-gov", "harbin-gov"] {
        net.issue(id, Role::Node);
    }
    let hub = net.start_hub().await;
    let mut config = net.agent_config("prov-gov", hub.addr);
    config.outbox_rescan = std::time::Duration::from_secs(3600);
    let prov = gongwen_tests::RunningAgent::start(config);
    let _harbin = net.start_agent("harbin-gov", hub.addr);
    hub.wait_ready(&["prov-gov", "harbin-gov"]).await;
    let scans = || prov.parts.counters().outbox_scans();
    // Each change in the outbox makes one scan, and the scan's own look at
    // the outbox makes none: three changes that hold no drop (a folder
    // made, then removed, then made again), each waited for by its scan,
    // make about three scans. The loop made thousands between two changes.
    let before = scans();
    let other = net.root("prov-gov").join("outbox").join("无此单位");
    let mut seen = before;
    for change in 0..3 {
        if change % 2 == 0 {
            std::fs::create_dir(&other).unwrap();
        } else {
            std::fs::remove_dir(&other).unwrap();
        }
        seen = gongwen_tests::wait_until("the outbox to be scanned after a change", || {
            let now = scans();
            (now > seen).then_some(now)
        })
        .await;
    }
    let idle = seen - before;
    assert!(idle <= 5, "{idle} outbox scans for three changes");

    net.drop_file(
        "prov-gov",
        "harbin-gov",
        "通知.txt",
        b"still picked up at once",
    );
    let docs = wait_inbox(&net.root("harbin-gov"), "prov-gov", 1).await;
    assert_eq!(
        std::fs::read(docs[0].join("通知.txt")).unwrap(),
        b"still picked up at once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_has_a_folder_for_every_unit_and_group_and_a_directory_list() {
    let net = Net::new();
    for id in ["prov-gov", "harbin-gov", "daqing-gov"] {
        net.issue(id, Role::Node);
    }
    let hub = net.start_hub().await;
    let _harbin = net.start_agent("harbin-gov", hub.addr);
    let _daqing = net.start_agent("daqing-gov", hub.addr);
    hub.wait_ready(&["harbin-gov", "daqing-gov"]).await;
    let _prov = net.start_agent("prov-gov", hub.addr);
    let outbox = net.root("prov-gov").join("outbox");
    let list = wait_until("outbox/单位名录.txt", || {
        std::fs::read_to_string(outbox.join("单位名录.txt")).ok()
    })
    .await;
    for name in ["harbin-gov", "daqing-gov", "cities"] {
        assert!(outbox.join(name).is_dir(), "no outbox/{name}/");
        assert!(list.contains(name), "{list}");
    }
    assert!(!outbox.join("prov-gov").exists());
    // The README's first example now works as written: copy a file into a
    // folder that is already there.
    std::fs::write(outbox.join("harbin-gov").join(".report.pdf.part"), b"%PDF").unwrap();
    std::fs::rename(
        outbox.join("harbin-gov").join(".report.pdf.part"),
        outbox.join("harbin-gov").join("report.pdf"),
    )
    .unwrap();
    let docs = wait_inbox(&net.root("harbin-gov"), "prov-gov", 1).await;
    assert_eq!(std::fs::read(docs[0].join("report.pdf")).unwrap(), b"%PDF");
    // The list itself is never taken for a drop.
    assert!(outbox.join("单位名录.txt").exists());
    assert!(
        !net.root("prov-gov")
            .join("failed")
            .join("单位名录.txt")
            .exists()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_senders_record_shows_the_deadline_the_hub_set_from_the_urgency() {
    let net = Net::new();
    for id in ["prov-gov", "harbin-gov"] {
        net.issue(id, Role::Node);
    }
    let hub = net.start_hub().await;
    let _prov = net.start_agent("prov-gov", hub.addr);
    let _harbin = net.start_agent("harbin-gov", hub.addr);
    hub.wait_ready(&["prov-gov", "harbin-gov"]).await;
    // Urgent, no deadline of its own: the hub sets acceptance + 4 h.
    net.sidecar(
        "prov-gov",
        "harbin-gov",
        "加急.txt",
        "urgency = \"urgent\"\n",
    );
    net.drop_file("prov-gov", "harbin-gov", "加急.txt", b"urgent");
    let docs = wait_inbox(&net.root("harbin-gov"), "prov-gov", 1).await;
    let doc = docs[0].file_name().unwrap().to_string_lossy().into_owned();
    let read = |p: std::path::PathBuf| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    };
    let received = read(docs[0].join("metadata.json"));
    let sent_meta = net
        .root("prov-gov")
        .join("sent")
        .join(&doc)
        .join("metadata.json");
    let sent = wait_until("the sender's metadata.json", || {
        sent_meta.exists().then(|| read(sent_meta.clone()))
    })
    .await;
    assert!(received["deadline"].is_string(), "{received}");
    assert_eq!(sent["deadline"], received["deadline"]);
}
