//! The 公文 itself (issue 26, first part): the GB/T 9704 elements travel in
//! the signed header — from a sidecar, from `send` flags, from the
//! console's compose form — reach every recipient's `metadata.json` and
//! document page, each recipient's copy numbered when asked; a 请示
//! without 签发人, a 文种 outside the 15 and a 附件说明 that does not match
//! the attachments are refused with the reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use gongwen_tests::web::{Browser, PASSWORD, named_units};
use gongwen_tests::{wait_inbox, wait_until};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_elements_of_a_gongwen_reach_each_recipient_signed_and_numbered() {
    let u = named_units().await;
    // A folder: 正文 and two attachments, to harbin-gov (主送) and
    // daqing-gov (抄送), numbered copies.
    let outbox = u.net.root("prov-gov").join("outbox").join("harbin-gov");
    let staging = u.net.root("prov-gov").join("staging-联合通知");
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::write(staging.join("正文.pdf"), b"%PDF-1.4 main").unwrap();
    std::fs::write(staging.join("附件1.xlsx"), b"PK plan").unwrap();
    std::fs::write(staging.join("附件2.docx"), b"PK budget").unwrap();
    u.net.sidecar(
        "prov-gov",
        "harbin-gov",
        "联合通知",
        "title = \"关于做好防汛工作的联合通知\"\ndoc_type = \"通知\"\ncc = [\"daqing-gov\"]\n\
         issuer = [\"黑龙江省人民政府办公厅\", \"黑龙江省应急管理厅\"]\nsigner = \"王一\"\n\
         written_on = 2026-12-01\ncopy_no = true\n\
         attachments_note = [\"1. 防汛工作方案\", \"2. 经费预算\"]\n\
         printed_by = \"黑龙江省人民政府办公厅\"\nprinted_on = \"2026-12-02\"\npublicity = \"依申请公开\"\n",
    );
    std::fs::rename(&staging, outbox.join("联合通知")).unwrap();

    let harbin = wait_inbox(&u.net.root("harbin-gov"), "prov-gov", 1).await;
    let daqing = wait_inbox(&u.net.root("daqing-gov"), "prov-gov", 1).await;
    let m = metadata(&harbin[0]);
    let e = &m["elements"];
    assert_eq!(
        e["issuers"],
        serde_json::json!(["黑龙江省人民政府办公厅", "黑龙江省应急管理厅"]),
        "{m:#}"
    );
    assert_eq!(e["signers"], serde_json::json!(["王一"]));
    assert_eq!(e["written_on"], "2026-12-01");
    assert_eq!(
        e["attachments_note"],
        serde_json::json!(["1. 防汛工作方案", "2. 经费预算"])
    );
    assert_eq!(e["printed_by"], "黑龙江省人民政府办公厅");
    assert_eq!(e["printed_on"], "2026-12-02");
    assert_eq!(e["publicity"], "依申请公开");
    // 份号: 主送 first.
    assert_eq!(m["copy_no"], "000001", "{m:#}");
    assert_eq!(metadata(&daqing[0])["copy_no"], "000002");

    // The recipient's document page states them.
    let doc = harbin[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let mut b = Browser::new(u.harbin.console.unwrap());
    b.log_in("li.si", PASSWORD).await;
    let page = b.get(&format!("/inbox/{doc}")).await.text();
    for want in [
        "份号",
        "000001",
        "黑龙江省人民政府办公厅、黑龙江省应急管理厅",
        "联合行文",
        "签发人",
        "王一",
        "2026-12-01",
        "2. 经费预算",
        "依申请公开",
    ] {
        assert!(page.contains(want), "{want} missing: {page}");
    }

    // In a browser the page reads like the document: the 版头 with the
    // organs' mark in red, the title, 主送, 附件说明, 署名 and 成文日期, and
    // the 版记.
    if !gongwen_tests::browser::available() {
        return;
    }
    let mut chrome = gongwen_tests::browser::Chrome::start().await;
    let base = gongwen_tests::web::base(&u.harbin);
    chrome.log_in(&base, "li.si", PASSWORD).await;
    chrome.goto(&format!("{base}/inbox/{doc}")).await;
    let face = {
        let el = "article.gongwen";
        chrome.find(el).await;
        chrome.text().await
    };
    for want in [
        "000001",
        "黑龙江省人民政府办公厅",
        "黑龙江省应急管理厅",
        "文件",
        "签发人：王一",
        "关于做好防汛工作的联合通知",
        "哈尔滨市人民政府：",
        "1. 防汛工作方案",
        "2026年12月1日",
        "抄送：大庆市人民政府。",
        "2026年12月2日印发",
    ] {
        assert!(face.contains(want), "{want} missing from the face: {face}");
    }
    assert_eq!(
        chrome.css_value("article.gongwen .gw-mark", "color").await,
        "rgba(204, 0, 0, 1)",
        "the 发文机关标志 is not red"
    );
    chrome.screenshot("doc-face").await;
    chrome.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_a_signer_and_other_broken_elements_are_refused_with_the_reason() {
    let u = named_units().await;
    let root = u.net.root("prov-gov");
    for (name, sidecar, says) in [
        (
            "请示.txt",
            "doc_type = \"请示\"\ntitle = \"关于拨付经费的请示\"\n",
            "请示是上行文，须写明签发人",
        ),
        (
            "简报.txt",
            "doc_type = \"简报\"\n",
            "不是《党政机关公文处理工作条例》规定的 15 种之一",
        ),
        (
            "附件说明.txt",
            "attachments_note = [\"1. 方案\"]\n",
            "附件说明有 1 项，附件却有 0 个",
        ),
        (
            "日期.txt",
            "written_on = \"2026-02-30\"\n",
            "成文日期“2026-02-30”不是日期",
        ),
        ("公开.txt", "publicity = \"公开\"\n", "公开属性“公开”不认识"),
    ] {
        u.net.sidecar("prov-gov", "harbin-gov", name, sidecar);
        u.net.drop_file("prov-gov", "harbin-gov", name, b"text");
        let why = failed_reason(&root, name).await;
        assert!(why.contains(says), "{name}: {why}");
    }
    // The same rule from the command line, before anything is queued.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("请示.txt");
    std::fs::write(&file, b"text").unwrap();
    let config = u.net.path().join("prov-gov.toml");
    let args = [
        "send",
        &file.display().to_string(),
        "--to",
        "harbin-gov",
        "--doc-type",
        "请示",
        "--no-wait",
    ];
    let (ok, said) = gongwen_tests::run_cli("gongwen-agent", &args, &config);
    assert!(!ok && said.contains("须写明签发人"), "{said}");
    // With one, and the other flags, it goes.
    let mut args = args.to_vec();
    args.extend([
        "--signer",
        "王一",
        "--written-on",
        "2026-12-01",
        "--publicity",
        "主动公开",
        "--copy-no",
    ]);
    let (ok, said) = gongwen_tests::run_cli("gongwen-agent", &args, &config);
    assert!(ok, "{said}");
    let docs = wait_inbox(&u.net.root("harbin-gov"), "prov-gov", 1).await;
    let m = metadata(&docs[0]);
    assert_eq!(
        m["elements"]["signers"],
        serde_json::json!(["王一"]),
        "{m:#}"
    );
    assert_eq!(m["elements"]["publicity"], "主动公开");
    assert_eq!(m["copy_no"], "000001");
    assert_eq!(m["doc_type"], "请示");
}
