//! The console in a real browser: headless Chromium (Debian `chromium` and
//! `chromium-driver`) driven over WebDriver, against real agents and a real
//! hub on loopback. Each test saves screenshots under
//! target/console-screenshots/. Outside CI they skip, naming the packages,
//! where the browser is missing; CI installs it and runs them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gongwen_agent::unit::accounts::{Accounts, UserRole};
use gongwen_common::Role;
use gongwen_tests::browser::{self, Chrome};
use gongwen_tests::web::{PASSWORD, base, units};
use gongwen_tests::{Net, RunningAgent, wait_inbox};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clerk_signs_for_a_notice_in_the_browser_and_the_sender_sees_it_signed() {
    if !browser::available() {
        return;
    }
    let u = units().await;
    u.net.sidecar(
        "prov-gov",
        "harbin-gov",
        "通知.pdf",
        "title = \"关于做好冬季安全生产工作的通知\"\ndoc_number = \"黑政发〔2026〕12号\"\nurgency = \"urgent\"\n",
    );
    u.net
        .drop_file("prov-gov", "harbin-gov", "通知.pdf", b"%PDF-1.4 notice");
    let docs = wait_inbox(&u.net.root("harbin-gov"), "prov-gov", 1).await;
    let doc = docs[0].file_name().unwrap().to_string_lossy().into_owned();
    u.harbin.wait_received(doc.parse().unwrap()).await;

    let mut chrome = Chrome::start().await;
    let harbin = base(&u.harbin);
    chrome.log_in(&harbin, "li.si", PASSWORD).await;
    let pending = chrome.text().await;
    assert!(pending.contains("待签收"), "{pending}");
    assert!(
        pending.contains("关于做好冬季安全生产工作的通知"),
        "{pending}"
    );
    assert!(pending.contains("加急"), "{pending}");
    chrome.screenshot("1-clerk-pending").await;

    chrome.click(&format!("a[href='/inbox/{doc}']")).await;
    let page = chrome.text().await;
    assert!(
        page.contains("黑政发〔2026〕12号") && page.contains("签收人"),
        "{page}"
    );
    chrome.screenshot("2-clerk-document").await;
    // 签收 asks for a confirmation first: the button alone does nothing.
    chrome.click("form.ack button[type=submit]").await;
    assert!(
        chrome.url().await.ends_with(&format!("/inbox/{doc}")),
        "signed for without the confirmation"
    );
    chrome.click("form.ack input[name=confirm]").await;
    chrome
        .click_and_land("form.ack button[type=submit]", "done=ack")
        .await;
    let signed = chrome
        .wait_for_text(&format!("{harbin}/inbox/{doc}"), "已签收")
        .await;
    assert!(signed.contains("李四"), "{signed}");
    chrome.screenshot("3-clerk-signed").await;

    // The sender, in the same browser (another origin, another session).
    let prov = base(&u.prov);
    chrome.log_in(&prov, "wang", PASSWORD).await;
    let table = chrome
        .wait_for_text(&format!("{prov}/sent/{doc}"), "已签收 1 / 共 1")
        .await;
    assert!(table.contains("李四"), "{table}");
    chrome.screenshot("4-sender-signing-table").await;
    // Not one browser process is left behind.
    chrome.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_composed_in_the_browser_with_an_attachment_arrives_byte_identical() {
    if !browser::available() {
        return;
    }
    let u = units().await;
    let files = tempfile::tempdir().unwrap();
    let main = files.path().join("正文.txt");
    let attachment = files.path().join("附件1.xlsx");
    std::fs::write(&main, "关于召开全省安全生产会议的通知\n".repeat(50)).unwrap();
    let sheet: Vec<u8> = (0..300_000u32).map(|i| (i * 13 % 251) as u8).collect();
    std::fs::write(&attachment, &sheet).unwrap();

    let mut chrome = Chrome::start().await;
    let prov = base(&u.prov);
    chrome.log_in(&prov, "wang", PASSWORD).await;
    chrome.goto(&format!("{prov}/compose")).await;
    chrome.click("input[name=to][value='harbin-gov']").await;
    chrome
        .type_into("input[name=title]", "关于召开全省安全生产会议的通知")
        .await;
    chrome
        .type_into("input[name=doc_number]", "黑政发〔2026〕13号")
        .await;
    chrome.choose_file("input[name=main]", &main).await;
    chrome
        .choose_file("input[name=attachments]", &attachment)
        .await;
    chrome.screenshot("5-compose").await;
    chrome.click("form.compose button[type=submit]").await;

    let docs = wait_inbox(&u.net.root("harbin-gov"), "prov-gov", 1).await;
    assert_eq!(
        std::fs::read(docs[0].join("正文.txt")).unwrap(),
        std::fs::read(&main).unwrap()
    );
    assert_eq!(std::fs::read(docs[0].join("附件1.xlsx")).unwrap(), sheet);
    let url = chrome.url().await;
    assert!(url.contains("/sent/"), "{url}");
    let sent = chrome.wait_for_text(&url, "签收情况").await;
    assert!(sent.contains("harbin-gov"), "{sent}");
    chrome.screenshot("6-composed-sent").await;
    // Not one browser process is left behind.
    chrome.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervision_office_sees_the_overdue_item_in_the_browser() {
    if !browser::available() {
        return;
    }
    let net = Net::new();
    net.issue("prov-gov", Role::Node);
    net.issue("harbin-gov", Role::Node);
    net.issue("prov-supervision", Role::Supervisor);
    let clock = gongwen_common::clock::ManualClock::new(time::OffsetDateTime::now_utc());
    let hub = net
        .start_hub_with(
            "127.0.0.1:0".parse().unwrap(),
            std::sync::Arc::new(clock.clone()),
        )
        .await;
    let accounts = net
        .root("prov-supervision")
        .join("state")
        .join("accounts.json");
    Accounts::edit(&accounts, |a| {
        a.add_user("zhao", "赵督查", UserRole::Admin, PASSWORD, 0)
    })
    .unwrap();
    let _prov = net.start_agent("prov-gov", hub.addr);
    let _harbin = net.start_agent("harbin-gov", hub.addr);
    let sup = RunningAgent::start(net.agent_config_with(
        "prov-supervision",
        hub.addr,
        "[console]\nlisten = \"127.0.0.1:0\"",
    ));
    hub.wait_ready(&["prov-gov", "harbin-gov", "prov-supervision"])
        .await;
    net.sidecar(
        "prov-gov",
        "harbin-gov",
        "值班.txt",
        "title = \"关于汛期值班的通知\"\nurgency = \"urgent\"\n",
    );
    net.drop_file("prov-gov", "harbin-gov", "值班.txt", b"on duty");
    wait_inbox(&net.root("harbin-gov"), "prov-gov", 1).await;
    clock.advance(std::time::Duration::from_secs(6 * 3600));
    hub.handle.escalate_now().await.unwrap();

    let mut chrome = Chrome::start().await;
    let url = base(&sup);
    chrome.log_in(&url, "zhao", PASSWORD).await;
    let page = chrome
        .wait_for_text(&format!("{url}/supervision"), "关于汛期值班的通知")
        .await;
    assert!(
        page.contains("harbin-gov") && page.contains("超期"),
        "{page}"
    );
    chrome.screenshot("7-supervision").await;
    // Not one browser process is left behind.
    chrome.quit().await;
}

/// 请示 → 批复 and 转发 in the browser: harbin-gov asks prov-gov for a
/// decision; prov-gov's clerk chooses 同意 and answers; harbin-gov's clerk
/// sees it in the 答复汇总 of the 请示; prov-gov's clerk then forwards the
/// 请示 to daqing-gov by ticking it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_approved_and_forwarded_in_the_browser() {
    if !browser::available() {
        return;
    }
    let u = units().await;
    u.net.sidecar(
        "harbin-gov",
        "prov-gov",
        "请示.txt",
        "title = \"关于申请防汛资金的请示\"\ndoc_type = \"请示\"\nsigner = \"王一\"\nreply = \"decision\"\n",
    );
    u.net.drop_file(
        "harbin-gov",
        "prov-gov",
        "请示.txt",
        "请批准防汛资金。".as_bytes(),
    );
    let docs = wait_inbox(&u.net.root("prov-gov"), "harbin-gov", 1).await;
    let doc = docs[0].file_name().unwrap().to_string_lossy().into_owned();

    let mut chrome = Chrome::start().await;
    let prov = base(&u.prov);
    chrome.log_in(&prov, "wang", PASSWORD).await;
    chrome.goto(&format!("{prov}/inbox/{doc}")).await;
    let page = chrome.text().await;
    assert!(page.contains("要求答复") && page.contains("批复"), "{page}");
    chrome
        .click("form.reply select[name=decision] option[value='approved']")
        .await;
    chrome
        .type_into("form.reply input[name=note]", "同意拨付，专款专用")
        .await;
    chrome.screenshot("8-approve").await;
    chrome.click("form.reply button[type=submit]").await;
    let answer = wait_inbox(&u.net.root("harbin-gov"), "prov-gov", 1).await;
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(answer[0].join("metadata.json")).unwrap()).unwrap();
    assert_eq!(meta["in_reply_to"]["doc_id"], doc.as_str(), "{meta}");
    assert_eq!(meta["in_reply_to"]["decision"], "approved", "{meta}");

    // The asking clerk sees the decision in the 汇总 of the 请示.
    let harbin = base(&u.harbin);
    chrome.log_in(&harbin, "li.si", PASSWORD).await;
    let sent = chrome
        .wait_for_text(&format!("{harbin}/sent/{doc}"), "已报送 1 / 共 1")
        .await;
    assert!(
        sent.contains("同意") && sent.contains("同意拨付，专款专用"),
        "{sent}"
    );
    chrome.screenshot("9-asker-summary").await;

    // prov-gov forwards the 请示 to daqing-gov with a tick and a click.
    chrome.log_in(&prov, "wang", PASSWORD).await;
    chrome.goto(&format!("{prov}/inbox/{doc}")).await;
    chrome
        .click("form.forward input[name=to][value='daqing-gov']")
        .await;
    chrome
        .type_into("form.forward input[name=note]", "请参阅")
        .await;
    chrome.click("form.forward button[type=submit]").await;
    let copy = wait_inbox(&u.net.root("daqing-gov"), "prov-gov", 1).await;
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(copy[0].join("metadata.json")).unwrap()).unwrap();
    assert_eq!(meta["forwarded_from"]["sender"], "harbin-gov", "{meta}");
    assert_eq!(
        std::fs::read(copy[0].join("请示.txt")).unwrap(),
        "请批准防汛资金。".as_bytes()
    );
    let url = chrome.url().await;
    assert!(url.contains("/sent/"), "{url}");
    chrome.screenshot("10-forwarded").await;
    // Not one browser process is left behind.
    chrome.quit().await;
}
