//! Documents that ask for an answer (issue 15, first part): a 请示 asking
//! for a decision reaches the superior with the question in its signed
//! header; the 批复 (an outbox drop whose sidecar says in_reply_to and the
//! decision) reaches the asking unit linked to the question; answers that
//! do not fit the question are refused with a plain reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use gongwen_common::Role;
use gongwen_tests::{Net, RunningAgent, RunningHub, wait_inbox, wait_until};

async fn two_units() -> (Net, RunningHub, RunningAgent, RunningAgent) {
    let net = Net::new();
    net.issue("prov-gov", Role::Node);
    net.issue("harbin-gov", Role::Node);
    let hub = net.start_hub().await;
    let mut prov = net.start_agent("prov-gov", hub.addr);
    let mut harbin = net.start_agent("harbin-gov", hub.addr);
    prov.wait_connected().await;
    harbin.wait_connected().await;
    (net, hub, prov, harbin)
}

fn metadata(doc: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(doc.join("metadata.json")).unwrap()).unwrap()
}

async fn failed_reason(root: &Path, name: &str) -> String {
    let failed = root.join("failed");
    wait_until(&format!("{name} in failed/"), || {
        std::fs::read_to_string(failed.join(format!("{name}.error.txt"))).ok()
    })
    .await
}

/// harbin-gov asks prov-gov (`reply` = `kind`); the document as prov-gov
/// received it.
async fn ask(net: &Net, name: &str, kind: Option<&str>) -> PathBuf {
    let before = gongwen_tests::inbox_docs(&net.root("prov-gov"), "harbin-gov").len();
    if let Some(kind) = kind {
        net.sidecar(
            "harbin-gov",
            "prov-gov",
            name,
            &format!(
                "doc_type = \"请示\"\nsigner = \"王一\"\nreply = \"{kind}\"\nreply_by = \"5d\"\n"
            ),
        );
    }
    net.drop_file("harbin-gov", "prov-gov", name, "请示内容".as_bytes());
    let docs = wait_inbox(&net.root("prov-gov"), "harbin-gov", before + 1).await;
    docs.into_iter()
        .find(|d| metadata(d)["title"] == name.trim_end_matches(".txt"))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_answered_approved_reaches_the_asking_unit_linked_to_it() {
    let (net, hub, _prov, _harbin) = two_units().await;
    let asked = ask(&net, "关于申请专项资金的请示.txt", Some("decision")).await;
    let m = metadata(&asked);
    assert_eq!(m["reply"], "decision", "{m}");
    assert!(m["reply_by"].as_str().unwrap().contains("432000 s"), "{m}");
    let asked_id = m["doc_id"].as_str().unwrap().to_owned();

    net.sidecar(
        "prov-gov",
        "harbin-gov",
        "批复.txt",
        &format!("doc_type = \"批复\"\nin_reply_to = \"{asked_id}\"\ndecision = \"approved\"\n"),
    );
    net.drop_file("prov-gov", "harbin-gov", "批复.txt", "同意。".as_bytes());
    let answers = wait_inbox(&net.root("harbin-gov"), "prov-gov", 1).await;
    let a = metadata(&answers[0]);
    assert_eq!(a["in_reply_to"]["doc_id"], asked_id.as_str(), "{a}");
    assert_eq!(a["in_reply_to"]["digest"], m["digest"], "{a}");
    assert_eq!(a["in_reply_to"]["decision"], "approved", "{a}");
    assert_eq!(a["in_reply_to"]["decision_text"], "同意", "{a}");
    let first = a["doc_id"].as_str().unwrap().to_owned();
    // Answering from the outbox signed for the question too.
    gongwen_tests::wait_status(&net.root("harbin-gov"), "the question signed for", |st| {
        st.iter()
            .any(|d| d.doc_id == asked_id && d.recipients.iter().any(|r| r.state == "acknowledged"))
    })
    .await;

    // A second answer must say which it corrects (once the first is
    // filed as sent at prov-gov).
    gongwen_tests::wait_status(
        &net.root("prov-gov"),
        "the first answer filed as sent",
        |st| st.iter().any(|d| d.doc_id == first && d.stage == "sent"),
    )
    .await;
    let sidecar = |name: &str, extra: &str| {
        net.sidecar(
            "prov-gov",
            "harbin-gov",
            name,
            &format!("in_reply_to = \"{asked_id}\"\ndecision = \"revise\"\n{extra}"),
        )
    };
    sidecar("再批复.txt", "");
    net.drop_file(
        "prov-gov",
        "harbin-gov",
        "再批复.txt",
        "修改后再报。".as_bytes(),
    );
    let said = failed_reason(&net.root("prov-gov"), "再批复.txt").await;
    assert!(
        said.contains("answered already") && said.contains(&first),
        "{said}"
    );
    sidecar("更正批复.txt", &format!("supersedes = \"{first}\"\n"));
    net.drop_file(
        "prov-gov",
        "harbin-gov",
        "更正批复.txt",
        "修改后再报。".as_bytes(),
    );
    let answers = wait_inbox(&net.root("harbin-gov"), "prov-gov", 2).await;
    let corrected = answers
        .iter()
        .map(|d| metadata(d))
        .find(|m| m["doc_id"] != first.as_str())
        .unwrap();
    assert_eq!(
        corrected["in_reply_to"]["supersedes"],
        first.as_str(),
        "{corrected}"
    );
    assert_eq!(corrected["in_reply_to"]["decision_text"], "修改后再报");

    // The hub's status of the question shows the answer and its decision.
    let status = gongwen_tests::ask_hub(
        &hub.data_dir,
        &gongwen_hub::ops::control::Request::Status {
            doc: asked_id.parse().unwrap(),
        },
    )
    .await;
    assert_eq!(status["reply"], "decision", "{status}");
    let row = &status["recipients"][0];
    assert_eq!(row["reply_state"], "answered", "{status}");
    assert_eq!(row["decision"], "revise", "{status}");
    assert_eq!(row["answer"], corrected["doc_id"], "{status}");
    assert!(row["answered_at"].is_string(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_that_do_not_fit_the_question_are_refused_with_the_reason() {
    let (net, _hub, _prov, _harbin) = two_units().await;
    let decision = metadata(&ask(&net, "请示一.txt", Some("decision")).await);
    let report = metadata(&ask(&net, "通知一.txt", Some("report")).await);
    let plain = metadata(&ask(&net, "普通函.txt", None).await);
    let cases = [
        (&decision, "", "asks for a decision"),
        (&report, "decision = \"revise\"\n", "asks for a report"),
        (&plain, "", "asked for no answer"),
    ];
    for (i, (asked, extra, why)) in cases.iter().enumerate() {
        let name = format!("回复{i}.txt");
        net.sidecar(
            "prov-gov",
            "harbin-gov",
            &name,
            &format!(
                "in_reply_to = \"{}\"\n{extra}",
                asked["doc_id"].as_str().unwrap()
            ),
        );
        net.drop_file("prov-gov", "harbin-gov", &name, b"answer");
        let said = failed_reason(&net.root("prov-gov"), &name).await;
        assert!(said.contains(why), "{name}: {said}");
    }
    // Not in the inbox at all, and a sidecar that is not even an answer.
    net.sidecar(
        "prov-gov",
        "harbin-gov",
        "无此文.txt",
        "in_reply_to = \"01a24b38-8538-78ce-bf64-dd20a1115f31\"\ndecision = \"approved\"\n",
    );
    net.drop_file("prov-gov", "harbin-gov", "无此文.txt", b"answer");
    let said = failed_reason(&net.root("prov-gov"), "无此文.txt").await;
    assert!(said.contains("本单位收文中没有要答复的公文"), "{said}");
    net.sidecar(
        "prov-gov",
        "harbin-gov",
        "孤立.txt",
        "decision = \"approved\"\n",
    );
    net.drop_file("prov-gov", "harbin-gov", "孤立.txt", b"answer");
    let said = failed_reason(&net.root("prov-gov"), "孤立.txt").await;
    assert!(said.contains("in_reply_to"), "{said}");
    // Nothing of these reached harbin-gov.
    assert!(gongwen_tests::inbox_docs(&net.root("harbin-gov"), "prov-gov").is_empty());
}

fn agent_cli(net: &Net, id: &str, args: &[&str]) -> (bool, String) {
    gongwen_tests::run_cli(
        "gongwen-agent",
        args,
        &net.path().join(format!("{id}.toml")),
    )
}

/// prov-gov asks `to` (comma-separated) for a report due in 5 days, with
/// `gongwen-agent send --reply report`.
fn ask_for_report(net: &Net, title: &str, to: &str) {
    let notice = net.path().join(format!("{title}.txt"));
    std::fs::write(&notice, "请于5日内报送。").unwrap();
    let (ok, said) = agent_cli(
        net,
        "prov-gov",
        &[
            "send",
            &notice.display().to_string(),
            "--to",
            to,
            "--doc-type",
            "通知",
            "--reply",
            "report",
            "--reply-by",
            "5d",
            "--no-wait",
        ],
    );
    assert!(ok, "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_asked_with_send_is_answered_with_reply_which_signs_for_it_first() {
    let (net, _hub, _prov, _harbin) = two_units().await;
    ask_for_report(&net, "关于报送年度统计数据的通知", "harbin-gov");
    let docs = wait_inbox(&net.root("harbin-gov"), "prov-gov", 1).await;
    let asked = metadata(&docs[0]);
    assert_eq!(asked["reply"], "report", "{asked}");
    let asked_id = asked["doc_id"].as_str().unwrap().to_owned();

    // A decision where a report is asked: refused at once, nothing queued.
    let (ok, said) = agent_cli(
        &net,
        "harbin-gov",
        &["reply", &asked_id, "--decision", "approved", "--by", "李四"],
    );
    assert!(!ok && said.contains("asks for a report"), "{said}");
    // A report without files: refused.
    let (ok, said) = agent_cli(&net, "harbin-gov", &["reply", &asked_id, "--by", "李四"]);
    assert!(!ok && said.contains("carries files"), "{said}");

    let report = net.path().join("统计数据.csv");
    std::fs::write(&report, "指标,数值\n人口,1000\n").unwrap();
    let (ok, said) = agent_cli(
        &net,
        "harbin-gov",
        &[
            "reply",
            &asked_id,
            &report.display().to_string(),
            "--by",
            "李四",
        ],
    );
    assert!(
        ok && said.contains("signed for") && said.contains("queued"),
        "{said}"
    );
    let answers = wait_inbox(&net.root("prov-gov"), "harbin-gov", 1).await;
    let a = metadata(&answers[0]);
    assert_eq!(a["in_reply_to"]["doc_id"], asked_id.as_str(), "{a}");
    assert!(a["in_reply_to"]["decision"].is_null(), "{a}");
    assert_eq!(
        a["title"], "关于《关于报送年度统计数据的通知》的报告",
        "{a}"
    );
    assert!(answers[0].join("统计数据.csv").exists());
    // The question was signed for by the one who answered.
    gongwen_tests::wait_status(
        &net.root("prov-gov"),
        "the question signed for by 李四",
        |st| {
            st.iter().any(|d| {
                d.doc_id == asked_id
                    && d.recipients
                        .iter()
                        .any(|r| r.acknowledged_by.as_deref() == Some("李四"))
            })
        },
    )
    .await;
}

/// The hub is SIGKILLed after committing an answer and before saying so to
/// the answering unit: restarted, the answer is delivered once and the
/// question's status shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_survives_a_hub_killed_between_its_upload_and_its_delivery() {
    use gongwen_tests::{AgentProcess, HubProcess};
    let net = Net::new();
    net.issue("prov-gov", Role::Node);
    net.issue("harbin-gov", Role::Node);
    let mut hub = HubProcess::start(&net, "127.0.0.1:0".parse().unwrap()).await;
    let addr = hub.addr;
    let _prov = AgentProcess::start(&net, "prov-gov", addr);
    let _harbin = AgentProcess::start(&net, "harbin-gov", addr);
    hub.wait_units(2).await;
    net.sidecar(
        "prov-gov",
        "harbin-gov",
        "请示.txt",
        "doc_type = \"请示\"\nsigner = \"王一\"\nreply = \"decision\"\n",
    );
    net.drop_file("prov-gov", "harbin-gov", "请示.txt", "请批示。".as_bytes());
    let asked = wait_inbox(&net.root("harbin-gov"), "prov-gov", 1).await;
    let asked_id = metadata(&asked[0])["doc_id"].as_str().unwrap().to_owned();

    hub.kill9();
    hub = HubProcess::start_armed(&net, addr, Some("hub-accepted-committed")).await;
    net.sidecar(
        "harbin-gov",
        "prov-gov",
        "批复.txt",
        &format!("in_reply_to = \"{asked_id}\"\ndecision = \"approved\"\n"),
    );
    net.drop_file("harbin-gov", "prov-gov", "批复.txt", "同意。".as_bytes());
    hub.wait_crash("hub-accepted-committed").await;
    hub = HubProcess::start(&net, addr).await;

    let answers = wait_inbox(&net.root("prov-gov"), "harbin-gov", 1).await;
    assert_eq!(
        metadata(&answers[0])["in_reply_to"]["doc_id"],
        asked_id.as_str()
    );
    let status = gongwen_tests::ask_hub(
        &hub.data_dir,
        &gongwen_hub::ops::control::Request::Status {
            doc: asked_id.parse().unwrap(),
        },
    )
    .await;
    let row = &status["recipients"][0];
    assert_eq!(
        (row["reply_state"].as_str(), row["decision"].as_str()),
        (Some("answered"), Some("approved")),
        "{status}"
    );
    // Delivered once, whatever the agent retried: once harbin-gov has
    // nothing left to send and all it sent has arrived, one document.
    let sent = gongwen_tests::wait_sender_settled(&net.root("harbin-gov")).await;
    assert_eq!(
        sent.iter()
            .filter(|d| d.recipients.iter().any(|r| r.recipient == "prov-gov"))
            .count(),
        1,
        "{sent:#?}"
    );
    assert_eq!(
        gongwen_tests::inbox_docs(&net.root("prov-gov"), "harbin-gov").len(),
        1
    );
}

/// 转发: the province's notice reaches a county through its city; the
/// county's copy names the province as its first issuer, verified, with
/// the province's files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_forwarded_from_province_to_county_names_its_first_issuer() {
    let net = Net::new();
    for id in ["prov-gov", "harbin-gov", "hulan-gov"] {
        net.issue(id, Role::Node);
    }
    let hub = net.start_hub().await;
    let mut agents = Vec::new();
    for id in ["prov-gov", "harbin-gov", "hulan-gov"] {
        let mut a = net.start_agent(id, hub.addr);
        a.wait_connected().await;
        agents.push(a);
    }
    net.sidecar(
        "prov-gov",
        "harbin-gov",
        "关于做好冬季安全生产工作的通知.txt",
        "doc_number = \"黑政发〔2026〕12号\"\ndoc_type = \"通知\"\n",
    );
    net.drop_file(
        "prov-gov",
        "harbin-gov",
        "关于做好冬季安全生产工作的通知.txt",
        "各市人民政府：请做好冬季安全生产工作。".as_bytes(),
    );
    let at_city = wait_inbox(&net.root("harbin-gov"), "prov-gov", 1).await;
    let original = metadata(&at_city[0]);
    let original_id = original["doc_id"].as_str().unwrap().to_owned();

    let forward = [
        "forward",
        &original_id,
        "--to",
        "hulan-gov",
        "--note",
        "请认真贯彻落实。",
        "--by",
        "孙八",
    ];
    // Passed on only once signed for (签收).
    let (ok, said) = agent_cli(&net, "harbin-gov", &forward);
    assert!(!ok && said.contains("请先签收"), "{said}");
    let (ok, said) = agent_cli(&net, "harbin-gov", &["ack", &original_id, "--by", "孙八"]);
    assert!(ok, "{said}");
    let (ok, said) = agent_cli(&net, "harbin-gov", &forward);
    assert!(ok, "{said}");
    let at_county = wait_inbox(&net.root("hulan-gov"), "harbin-gov", 1).await;
    let m = metadata(&at_county[0]);
    assert_ne!(
        m["doc_id"],
        original_id.as_str(),
        "a forward is a document of its own"
    );
    assert_eq!(m["sender"], "harbin-gov");
    assert_eq!(m["note"], "请认真贯彻落实。");
    let from = &m["forwarded_from"];
    assert_eq!(from["doc_id"], original_id.as_str(), "{m}");
    assert_eq!(from["sender"], "prov-gov", "{m}");
    assert_eq!(from["doc_number"], "黑政发〔2026〕12号", "{m}");
    assert_eq!(from["digest"], original["digest"], "{m}");
    assert_eq!(
        std::fs::read(at_county[0].join("关于做好冬季安全生产工作的通知.txt")).unwrap(),
        std::fs::read(at_city[0].join("关于做好冬季安全生产工作的通知.txt")).unwrap()
    );
    // The original's status at the hub shows the cascade.
    gongwen_tests::wait_all_delivered(&net.root("harbin-gov"), 1).await;
    let status = gongwen_tests::ask_hub(
        &hub.data_dir,
        &gongwen_hub::ops::control::Request::Status {
            doc: original_id.parse().unwrap(),
        },
    )
    .await;
    let city = &status["recipients"][0];
    assert_eq!(city["recipient"], "harbin-gov", "{status}");
    let passed = &city["forwarded"][0];
    assert_eq!(passed["doc_id"], m["doc_id"], "{status}");
    assert_eq!(
        passed["recipients"][0]["recipient"], "hulan-gov",
        "{status}"
    );
    assert_eq!(passed["recipients"][0]["state"], "delivered", "{status}");

    // The county's evidence: openssl alone checks the forward and the
    // province's original; one changed byte of the original fails it.
    let evidence = net.path().join("county-evidence");
    let (ok, said) = agent_cli(
        &net,
        "hulan-gov",
        &[
            "evidence",
            m["doc_id"].as_str().unwrap(),
            "--out",
            &evidence.display().to_string(),
        ],
    );
    assert!(ok, "{said}");
    let verify = || {
        let o = std::process::Command::new("sh")
            .arg(evidence.join("verify.sh"))
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    };
    let (ok, said) = verify();
    assert!(ok, "{said}");
    assert!(
        said.contains("OK    signature    original")
            && said.contains("OK    carries      original"),
        "{said}"
    );
    let original_signed = evidence.join("original.signed");
    let mut bytes = std::fs::read(&original_signed).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 1;
    std::fs::write(&original_signed, bytes).unwrap();
    let (ok, said) = verify();
    assert!(
        !ok && said.contains("FAIL  signature    original"),
        "{said}"
    );
    for a in agents {
        a.stop().await;
    }
    hub.stop().await;
}
