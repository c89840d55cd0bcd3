//! Bad input, each with a clear answer and nothing lost: odd drops in the
//! outbox, forged or misdirected receipts, certificates not yet valid,
//! damaged stores.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use gongwen_common::receipt::{Receipt, ReceiptKind};
use gongwen_common::wire::{ErrorCode, Message};
use gongwen_common::{DocId, NodeId, Role};
use gongwen_tests::raw::RawAgent;
use gongwen_tests::{Net, RunningAgent, RunningHub, wait_inbox, wait_until};

async fn two_units() -> (Net, RunningHub, RunningAgent, RunningAgent) {
    let net = Net::new();
    for id in ["prov-gov", "harbin-gov"] {
        net.issue(id, Role::Node);
    }
    let hub = net.start_hub().await;
    let prov = net.start_agent("prov-gov", hub.addr);
    let harbin = net.start_agent("harbin-gov", hub.addr);
    hub.wait_ready(&["prov-gov", "harbin-gov"]).await;
    (net, hub, prov, harbin)
}

/// Wait for `name` to be refused into failed/; return its reason text.
async fn failed_reason(root: &Path, name: &str) -> String {
    let failed = root.join("failed");
    wait_until(&format!("{name} in failed/"), || {
        std::fs::read_to_string(failed.join(format!("{name}.error.txt"))).ok()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_file_is_refused_with_a_reason_and_the_rest_of_the_batch_goes_through() {
    let (net, _hub, _prov, _harbin) = two_units().await;
    net.drop_file("prov-gov", "harbin-gov", "空白.txt", b"");
    net.drop_file("prov-gov", "harbin-gov", "正文.txt", b"not empty");
    let why = failed_reason(&net.root("prov-gov"), "空白.txt").await;
    assert!(why.contains("文件是空的"), "{why}");
    // The refused file itself is kept, not deleted.
    assert!(
        net.root("prov-gov")
            .join("failed")
            .join("空白.txt")
            .exists()
    );
    let docs = wait_inbox(&net.root("harbin-gov"), "prov-gov", 1).await;
    assert_eq!(
        std::fs::read(docs[0].join("正文.txt")).unwrap(),
        b"not empty"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_in_the_outbox_is_refused_and_its_target_is_left_alone() {
    let (net, _hub, _prov, harbin) = two_units().await;
    let outside = net.path().join("secret.txt");
    std::fs::write(&outside, b"outside the outbox").unwrap();
    let dir = net.root("prov-gov").join("outbox").join("harbin-gov");
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("link.txt")).unwrap();
    let why = failed_reason(&net.root("prov-gov"), "link.txt").await;
    assert!(why.contains("符号链接"), "{why}");
    assert_eq!(std::fs::read(&outside).unwrap(), b"outside the outbox");
    drop(harbin);
    assert!(gongwen_tests::inbox_docs(&net.root("harbin-gov"), "prov-gov").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_pipe_in_the_outbox_is_refused_without_blocking_the_sender() {
    let (net, _hub, _prov, _harbin) = two_units().await;
    let dir = net.root("prov-gov").join("outbox").join("harbin-gov");
    std::fs::create_dir_all(&dir).unwrap();
    // Reading a pipe nobody writes to waits forever.
    let made = std::process::Command::new("mkfifo")
        .arg(dir.join("管道.txt"))
        .status()
        .unwrap();
    assert!(made.success());
    let why = failed_reason(&net.root("prov-gov"), "管道.txt").await;
    assert!(why.contains("不是普通文件"), "{why}");
    // The sender carries on.
    net.drop_file("prov-gov", "harbin-gov", "正文.txt", b"after the pipe");
    let docs = wait_inbox(&net.root("harbin-gov"), "prov-gov", 1).await;
    assert_eq!(
        std::fs::read(docs[0].join("正文.txt")).unwrap(),
        b"after the pipe"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_of_the_longest_length_in_chinese_arrives_intact() {
    let (net, _hub, _prov, _harbin) = two_units().await;
    // 83 three-byte characters and ".txt": 253 bytes, near the 255 limit.
    let name = format!("{}.txt", "通".repeat(83));
    assert_eq!(name.len(), 253);
    let dir = net.root("prov-gov").join("outbox").join("harbin-gov");
    std::fs::create_dir_all(&dir).unwrap();
    let staging = net.path().join("long.tmp");
    std::fs::write(&staging, b"long name").unwrap();
    std::fs::rename(&staging, dir.join(&name)).unwrap();
    let docs = wait_inbox(&net.root("harbin-gov"), "prov-gov", 1).await;
    assert_eq!(std::fs::read(docs[0].join(&name)).unwrap(), b"long name");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_over_the_size_limit_is_refused_from_its_size_alone() {
    let net = Net::new();
    for id in ["prov-gov", "harbin-gov"] {
        net.issue(id, Role::Node);
    }
    let hub = net.start_hub().await;
    let mut config = net.agent_config("prov-gov", hub.addr);
    config.max_document_size = 1 << 20;
    let _prov = RunningAgent::start(config);
    let _harbin = net.start_agent("harbin-gov", hub.addr);
    hub.wait_ready(&["prov-gov", "harbin-gov"]).await;
    // A sparse 8 GiB file: refused by its size, without reading 8 GiB.
    let dir = net.root("prov-gov").join("outbox").join("harbin-gov");
    std::fs::create_dir_all(&dir).unwrap();
    let staging = net.path().join("huge.tmp");
    std::fs::File::create(&staging)
        .unwrap()
        .set_len(8 << 30)
        .unwrap();
    std::fs::rename(&staging, dir.join("huge.bin")).unwrap();
    let started = std::time::Instant::now();
    let why = failed_reason(&net.root("prov-gov"), "huge.bin").await;
    assert!(why.contains("最多可发送的 1048576 字节"), "{why}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}: was it read?",
        started.elapsed()
    );
}

/// A sender with a raw connection, and a document it sent to harbin-gov.
async fn raw_sender(net: &Net, hub: &RunningHub) -> (RawAgent, DocId, [u8; 32]) {
    net.issue("daqing-gov", Role::Node);
    let raw = RawAgent::connect(&net.path().join("daqing-gov"), "daqing-gov", hub.addr).await;
    let doc_id = DocId::generate();
    let doc = raw.seal(doc_id, &["harbin-gov"], "请示.txt", b"x").await;
    assert!(matches!(raw.upload(&doc).await, Message::Accepted { .. }));
    let digest = gongwen_common::envelope::SealedHeader::parse(&doc.header)
        .unwrap()
        .digest();
    (raw, doc_id, digest)
}

fn receipt(doc_id: DocId, kind: ReceiptKind, recipient: &str, digest: [u8; 32]) -> Receipt {
    Receipt {
        doc_id,
        kind,
        recipient: NodeId::parse(recipient).unwrap(),
        issuer: NodeId::parse(recipient).unwrap(),
        doc_digest: digest,
        time_ms: 0,
        by: "张三".into(),
        reason: String::new(),
        seals: Vec::new(),
    }
}

async fn submit(raw: &RawAgent, r: &Receipt) -> Message {
    let bytes = r.sign(&raw.signer).map(|s| s.encode());
    // Signing in another's name fails locally; send the statement anyway
    // by signing as ourselves and relabelling is what a forger would try.
    let bytes = match bytes {
        Ok(b) => b,
        Err(_) => {
            let mut own = r.clone();
            own.issuer = raw.signer.identity().id.clone();
            own.sign(&raw.signer).unwrap().encode()
        }
    };
    raw.request(&Message::SubmitReceipt { receipt: bytes })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_signed_by_the_wrong_unit_or_for_unknown_documents_are_refused() {
    let (net, hub, _prov, _harbin) = two_units().await;
    let (raw, doc_id, digest) = raw_sender(&net, &hub).await;

    // daqing-gov signs "harbin-gov acknowledged it" with its own key.
    let forged = receipt(doc_id, ReceiptKind::Acknowledged, "harbin-gov", digest);
    match submit(&raw, &forged).await {
        Message::Error { code, .. } => {
            assert!(
                matches!(code, ErrorCode::BadSignature | ErrorCode::NotTheSender),
                "{code:?}"
            );
        }
        other => panic!("a forged receipt was taken: {other:?}"),
    }
    // A receipt from a unit that is not a recipient of the document.
    let outsider = receipt(doc_id, ReceiptKind::Delivered, "daqing-gov", digest);
    match submit(&raw, &outsider).await {
        Message::Error { code, message } => {
            assert_eq!(code, ErrorCode::BadRequest);
            assert!(message.contains("not a recipient"), "{message}");
        }
        other => panic!("an outsider's receipt was taken: {other:?}"),
    }
    // A receipt for a document the hub never saw.
    let unknown = receipt(
        DocId::generate(),
        ReceiptKind::Delivered,
        "daqing-gov",
        digest,
    );
    match submit(&raw, &unknown).await {
        Message::Error { code, .. } => assert_eq!(code, ErrorCode::UnknownDocument),
        other => panic!("a receipt for an unknown document was taken: {other:?}"),
    }
}

/// A unit that holds a document may answer it before the hub has recorded
/// its delivery (a redelivered copy is answered at once, on another
/// stream): the hub asks for the answer again later rather than refusing
/// it for good, which would make the unit drop it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_ahead_of_its_delivery_is_asked_for_again_not_refused() {
    let (net, hub, _prov, harbin) = two_units().await;
    harbin.stop().await;
    hub.wait_nodes("harbin-gov offline", |r| {
        r.iter().any(|n| n.id == "harbin-gov" && !n.connected)
    })
    .await;
    let (_raw, doc_id, digest) = raw_sender(&net, &hub).await;
    // harbin-gov's link, which never answers the hub's delivery.
    let recipient = RawAgent::connect(&net.path().join("harbin-gov"), "harbin-gov", hub.addr).await;
    let ack = receipt(doc_id, ReceiptKind::Acknowledged, "harbin-gov", digest);
    match submit(&recipient, &ack).await {
        Message::Error { code, message } => {
            assert_eq!(code, ErrorCode::NotNow, "{message}");
            assert!(code.is_retryable());
            assert!(message.contains("not been delivered"), "{message}");
        }
        other => panic!("an answer ahead of its delivery was taken: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_not_yet_valid_is_refused_with_a_plain_reason() {
    let net = Net::new();
    let now = time::OffsetDateTime::now_utc();
    net.issue_with(
        "harbin-gov",
        Role::Node,
        gongwen_certs::Validity {
            not_before: now + time::Duration::days(1),
            not_after: now + time::Duration::days(30),
        },
    );
    let hub = net.start_hub().await;
    let mut agent = net.start_agent("harbin-gov", hub.addr);
    let err = agent.wait_error().await.to_string();
    assert!(
        err.contains("not yet valid") || err.contains("not valid yet"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_hub_store_stops_the_hub_with_a_clear_message_and_is_not_replaced() {
    // Both damages below make redb refuse the file; the hub must stop with
    // the file named instead of starting over with an empty store.
    let net = Net::new();
    // A separate process, stopped as an operator would: once it has
    // exited, nothing but the next start touches its store.
    let mut hub = gongwen_tests::HubProcess::start(&net, "127.0.0.1:0".parse().unwrap()).await;
    let data_dir = hub.data_dir.clone();
    hub.terminate().await;
    let store = std::fs::read_dir(&data_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "redb"))
        .expect("the hub's store file");
    for damage in ["truncated", "overwritten"] {
        let bytes = std::fs::read(&store).unwrap();
        let damaged = if damage == "truncated" {
            bytes[..bytes.len() / 3].to_vec()
        } else {
            let mut b = bytes.clone();
            for x in b.iter_mut().take(4096) {
                *x ^= 0x5a;
            }
            b
        };
        std::fs::write(&store, &damaged).unwrap();
        let out = std::process::Command::new(gongwen_tests::bin("gongwen-hub"))
            .args(["serve", "--config"])
            .arg(net.path().join("hub.toml"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{damage}: the hub started: {stderr}");
        assert!(
            stderr.contains(&store.display().to_string()),
            "{damage}: the message names the file: {stderr}"
        );
        // Not replaced by a new, empty store, and not changed: byte for
        // byte what it was, for whoever recovers it.
        let now = std::fs::read(&store).unwrap();
        assert!(
            now == damaged,
            "{damage}: the damaged store was changed ({} bytes before, {} after): {stderr}",
            damaged.len(),
            now.len()
        );
        std::fs::write(&store, &bytes).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drops_without_a_recipient_and_bad_sidecars_are_refused_with_reasons() {
    let (net, _hub, _prov, _harbin) = two_units().await;
    let root = net.root("prov-gov");
    // No recipient at all: dropped straight into outbox/.
    std::fs::write(net.path().join("stray.tmp"), b"where to?").unwrap();
    std::fs::rename(
        net.path().join("stray.tmp"),
        root.join("outbox").join("stray.txt"),
    )
    .unwrap();
    // Addressed only to the sending unit itself.
    net.drop_file("prov-gov", "prov-gov", "self.txt", b"to myself");
    // A sidecar that is not TOML, and one with a key nobody knows.
    net.sidecar(
        "prov-gov",
        "harbin-gov",
        "broken.txt",
        "title = \"unclosed\n",
    );
    net.drop_file("prov-gov", "harbin-gov", "broken.txt", b"x");
    net.sidecar(
        "prov-gov",
        "harbin-gov",
        "unknown.txt",
        "titel = \"typo\"\n",
    );
    net.drop_file("prov-gov", "harbin-gov", "unknown.txt", b"y");

    let stray = failed_reason(&root, "stray.txt").await;
    assert!(stray.contains("outbox/<收文单位编号>/"), "{stray}");
    let own = failed_reason(&root, "self.txt").await;
    assert!(own.contains("除本单位外没有主送单位"), "{own}");
    let broken = failed_reason(&root, "broken.txt").await;
    assert!(broken.contains("broken.txt.meta.toml"), "{broken}");
    let unknown = failed_reason(&root, "unknown.txt").await;
    assert!(unknown.contains("titel"), "{unknown}");
    // Nothing was sent, and the refused files are all kept.
    for name in ["stray.txt", "self.txt", "broken.txt", "unknown.txt"] {
        assert!(root.join("failed").join(name).exists(), "{name} kept");
    }
    assert!(gongwen_tests::inbox_docs(&net.root("harbin-gov"), "prov-gov").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_files_dropped_at_once_all_arrive_once() {
    // GONGWEN_FLOOD_FILES=10000 for the full case; CI uses fewer.
    let n: usize = std::env::var("GONGWEN_FLOOD_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let (net, _hub, _prov, _harbin) = two_units().await;
    let staging = net.path().join("flood");
    std::fs::create_dir_all(&staging).unwrap();
    for i in 0..n {
        std::fs::write(staging.join(format!("{i:05}.txt")), format!("document {i}")).unwrap();
    }
    let outbox = net.root("prov-gov").join("outbox").join("harbin-gov");
    std::fs::create_dir_all(&outbox).unwrap();
    for i in 0..n {
        let name = format!("{i:05}.txt");
        std::fs::rename(staging.join(&name), outbox.join(&name)).unwrap();
    }
    let inbox = net.root("harbin-gov");
    // A debug build on two busy cores manages ~20-30 documents a second.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60 + n as u64 / 10);
    loop {
        if gongwen_tests::inbox_docs(&inbox, "prov-gov").len() >= n {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {n} arrived",
            gongwen_tests::inbox_docs(&inbox, "prov-gov").len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut seen = std::collections::BTreeSet::new();
    for d in gongwen_tests::inbox_docs(&inbox, "prov-gov") {
        for f in std::fs::read_dir(&d).unwrap().flatten() {
            if f.file_name() != "metadata.json" {
                let body = std::fs::read_to_string(f.path()).unwrap();
                assert!(seen.insert(body.clone()), "twice: {body}");
            }
        }
    }
    assert_eq!(seen.len(), n);
    gongwen_tests::wait_all_delivered(&net.root("prov-gov"), n).await;
}

/// The `metadata.json` of a received document.
fn received_meta(doc: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(doc.join("metadata.json")).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_written_after_its_file_went_out_ends_in_failed_naming_the_document() {
    let (net, _hub, _prov, _harbin) = two_units().await;
    let root = net.root("prov-gov");
    net.drop_file("prov-gov", "harbin-gov", "通知.pdf", b"%PDF sent as it was");
    let docs = wait_inbox(&net.root("harbin-gov"), "prov-gov", 1).await;
    let doc_id = docs[0].file_name().unwrap().to_string_lossy().into_owned();
    // The clerk remembers the details a few seconds too late.
    net.sidecar(
        "prov-gov",
        "harbin-gov",
        "通知.pdf",
        "urgency = \"extra-urgent\"\ntitle = \"关于做好冬季安全生产工作的通知\"\n",
    );
    let why = failed_reason(&root, "通知.pdf.meta.toml").await;
    assert!(
        why.contains(&doc_id),
        "the reason does not name {doc_id}: {why}"
    );
    assert!(why.contains("没有用上"), "{why}");
    assert!(why.contains("先放附注文件、后放文件"), "{why}");
    assert!(
        !root.join("outbox/harbin-gov/通知.pdf.meta.toml").exists(),
        "the orphaned sidecar stayed in the outbox"
    );
    // The document that went out kept its defaults; nothing else was sent.
    assert_eq!(received_meta(&docs[0])["urgency"], "normal");
    let sent = gongwen_tests::wait_sender_settled(&root).await;
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(
        gongwen_tests::inbox_docs(&net.root("harbin-gov"), "prov-gov").len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_written_before_its_file_still_waits_for_it() {
    let (net, _hub, _prov, _harbin) = two_units().await;
    net.sidecar(
        "prov-gov",
        "harbin-gov",
        "报告.pdf",
        "urgency = \"urgent\"\n",
    );
    // A document dropped after it settles and goes: the scan that took it
    // looked at the sidecar too, older than the settle time by then. A
    // sidecar alone is not an orphan.
    net.drop_file("prov-gov", "harbin-gov", "其他.txt", b"after the sidecar");
    wait_inbox(&net.root("harbin-gov"), "prov-gov", 1).await;
    let root = net.root("prov-gov");
    assert!(!root.join("failed").join("报告.pdf.meta.toml").exists());
    assert!(root.join("outbox/harbin-gov/报告.pdf.meta.toml").exists());
    net.drop_file("prov-gov", "harbin-gov", "报告.pdf", b"%PDF");
    let docs = wait_inbox(&net.root("harbin-gov"), "prov-gov", 2).await;
    let report = docs
        .iter()
        .find(|d| d.join("报告.pdf").exists())
        .expect("报告.pdf arrived");
    assert_eq!(received_meta(report)["urgency"], "urgent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_name_that_is_not_utf8_is_refused_and_kept_byte_for_byte() {
    use std::os::unix::ffi::OsStrExt;
    let (net, _hub, _prov, _harbin) = two_units().await;
    let root = net.root("prov-gov");
    let dir = root.join("outbox").join("harbin-gov");
    std::fs::create_dir_all(&dir).unwrap();
    // "报告.txt" in GBK, as a Windows share might write it.
    let gbk = std::ffi::OsStr::from_bytes(b"\xb1\xa8\xb8\xe6.txt");
    assert!(gbk.to_str().is_none());
    std::fs::write(net.path().join("gbk.tmp"), b"gbk name").unwrap();
    std::fs::rename(net.path().join("gbk.tmp"), dir.join(gbk)).unwrap();
    let mut error_name = gbk.to_owned();
    error_name.push(".error.txt");
    let failed = root.join("failed");
    let why = wait_until("the GBK-named file in failed/", || {
        std::fs::read_to_string(failed.join(&error_name)).ok()
    })
    .await;
    assert!(why.contains("不是 UTF-8 编码"), "{why}");
    assert_eq!(std::fs::read(failed.join(gbk)).unwrap(), b"gbk name");
    assert!(gongwen_tests::inbox_docs(&net.root("harbin-gov"), "prov-gov").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_already_past_is_refused_with_a_plain_reason() {
    let (net, _hub, _prov, _harbin) = two_units().await;
    net.sidecar(
        "prov-gov",
        "harbin-gov",
        "旧通知.txt",
        "deadline = \"2020-12-01T17:00:00+08:00\"\n",
    );
    net.drop_file("prov-gov", "harbin-gov", "旧通知.txt", b"too late");
    let why = failed_reason(&net.root("prov-gov"), "旧通知.txt").await;
    assert!(why.contains("2020-12-01T17:00:00+08:00"), "{why}");
    assert!(why.contains("已经过去"), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_file_name_without_a_sidecar_gives_a_title_cut_to_the_limit() {
    let (net, _hub, _prov, _harbin) = two_units().await;
    let name = format!("{}.txt", "a".repeat(200));
    net.drop_file("prov-gov", "harbin-gov", &name, b"long name, no sidecar");
    let docs = wait_inbox(&net.root("harbin-gov"), "prov-gov", 1).await;
    let title = received_meta(&docs[0])["title"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(title, "a".repeat(gongwen_common::envelope::MAX_TITLE_CHARS));
    assert_eq!(
        std::fs::read(docs[0].join(&name)).unwrap(),
        b"long name, no sidecar"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newline_in_a_dropped_name_cannot_split_or_forge_a_log_record() {
    let net = Net::new();
    for id in ["prov-gov", "harbin-gov"] {
        net.issue(id, Role::Node);
    }
    let hub = net.start_hub().await;
    let prov = gongwen_tests::AgentProcess::start(&net, "prov-gov", hub.addr);
    let _harbin = net.start_agent("harbin-gov", hub.addr);
    hub.wait_ready(&["prov-gov", "harbin-gov"]).await;
    let forged = "2026-12-06T00:00:00.000000Z ERROR forged record";
    let name = format!("通知\n{forged}.txt");
    net.drop_file("prov-gov", "harbin-gov", &name, b"x");
    // Refused (a control character in a name), and said so in the log.
    failed_reason(&net.root("prov-gov"), &name).await;
    let log = wait_until("the refusal in the agent's log", || {
        let log = std::fs::read_to_string(&prov.log).ok()?;
        log.contains("moved to failed/").then_some(log)
    })
    .await;
    assert!(
        log.contains("通知\\n2026-12-06"),
        "the name is not escaped:\n{log}"
    );
    assert!(
        !log.lines().any(|l| l.starts_with(forged)),
        "a dropped name forged a log record:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_name_with_a_hidden_direction_control_is_refused_with_a_reason() {
    let (net, _hub, _prov, _harbin) = two_units().await;
    // Shown as 正文exe.pdf, named 正文 U+202E fdp.exe.
    let name = "正文\u{202e}fdp.exe";
    net.drop_file("prov-gov", "harbin-gov", name, b"MZ");
    let why = failed_reason(&net.root("prov-gov"), name).await;
    assert!(why.contains("text-direction"), "{why}");
    assert!(net.root("prov-gov").join("failed").join(name).exists());
}
