//! A clerk's day in the console (issue 25): units shown and found by their
//! names, a failed send fixed and sent again from 问题, a 退回 seen on the
//! sender's home page and sent again, the banner when the unit is cut off
//! and a 签收 made meanwhile that reaches the hub once it is back, a
//! printed 签收单 whose code openssl confirms, a 督办单 sent and received —
//! in headless Chromium where a person would click — and no English
//! sentence or command line on any page or notice a clerk reads.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gongwen_agent::front::control::Request;
use gongwen_agent::unit::accounts::{Accounts, UserRole};
use gongwen_common::{DocId, Role};
use gongwen_tests::browser::{self, Chrome};
use gongwen_tests::web::{Browser, PASSWORD, Units, base, form_encode, named_units};
use gongwen_tests::{Net, RunningAgent, ask_agent, wait_inbox, wait_until};

fn browser(agent: &RunningAgent) -> Browser {
    Browser::new(agent.console.expect("the agent has a console"))
}

/// Run a future to completion from a synchronous probe.
fn futures_now<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

/// Send one document from prov-gov to harbin-gov (and daqing-gov as 抄送
/// when `cc`) and wait until harbin-gov holds it.
async fn send(u: &Units, name: &str, title: &str, cc: bool) -> DocId {
    let mut toml = format!("title = \"{title}\"\ndoc_number = \"黑政发〔2026〕21号\"\n");
    if cc {
        toml.push_str("cc = [\"daqing-gov\"]\n");
    }
    u.net.sidecar("prov-gov", "harbin-gov", name, &toml);
    let before = gongwen_tests::inbox_docs(&u.net.root("harbin-gov"), "prov-gov").len();
    u.net
        .drop_file("prov-gov", "harbin-gov", name, b"%PDF-1.4 the text");
    let docs = wait_inbox(&u.net.root("harbin-gov"), "prov-gov", before + 1).await;
    let doc: DocId = docs
        .iter()
        .map(|d| d.file_name().unwrap().to_string_lossy().parse().unwrap())
        .max()
        .unwrap();
    u.harbin.wait_received(doc).await;
    doc
}

/// The text a person reads on an HTML page: tags (and the attributes and
/// hidden values in them), the stylesheet and entities gone.
fn visible(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
}

/// `text` without the verification codes of printed slips
/// (`1A2B-3C4D-5E6F-7A8B`): data, not words.
fn without_codes(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let is_code = |at: usize| {
        (0..19).all(|i| {
            chars.get(at + i).is_some_and(|c| {
                if i % 5 == 4 {
                    *c == '-'
                } else {
                    c.is_ascii_digit() || ('A'..='F').contains(c)
                }
            })
        })
    };
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if is_code(i) {
            out.push(' ');
            i += 19;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// Words of Latin letters in `text` once `known` (ids, file names, the
/// handful of terms every clerk knows as they are) are taken out.
fn english(text: &str, known: &[&str]) -> Vec<String> {
    const TERMS: [&str; 9] = [
        "SHA-256", "CSV", "PDF", "Ctrl+P", "A4", "HTTPS", "KB", "MB", "GB",
    ];
    let mut text = without_codes(text);
    let mut known: Vec<&str> = known.iter().chain(TERMS.iter()).copied().collect();
    // Longest first: a file name before the id it contains.
    known.sort_by_key(|k| std::cmp::Reverse(k.len()));
    for k in known {
        text = text.replace(k, " ");
    }
    text.split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| w.len() >= 2)
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn units_show_by_name_and_are_found_by_part_of_their_names() {
    let u = named_units().await;
    let doc = send(&u, "通知.pdf", "关于做好冬季安全生产工作的通知", true).await;
    let mut clerk = browser(&u.harbin);
    clerk.log_in("li.si", PASSWORD).await;

    // The document page names its units: 来文单位, 主送, 抄送.
    let page = visible(&clerk.get(&format!("/inbox/{doc}")).await.text());
    for name in ["黑龙江省人民政府", "哈尔滨市人民政府", "大庆市人民政府"] {
        assert!(page.contains(name), "{name} missing from {page}");
    }
    for id in ["prov-gov", "harbin-gov", "daqing-gov"] {
        assert!(
            !page.contains(id),
            "the id {id} shows on the clerk's page: {page}"
        );
    }

    // 收文 filtered by part of the sender's name, or of its id.
    for (typed, found) in [
        ("黑龙江", true),
        ("黑龙江省人民政府", true),
        ("prov", true),
        ("大庆", false),
    ] {
        let list = clerk
            .get(&format!("/inbox?sender={}", form_encode(typed)))
            .await
            .text();
        assert_eq!(
            list.contains("关于做好冬季安全生产工作的通知"),
            found,
            "sender filter {typed:?}: {list}"
        );
    }

    // The sender's 签收情况 names each recipient.
    let mut sender = browser(&u.prov);
    sender.log_in("wang", PASSWORD).await;
    let sent = wait_until("both recipients on the sender's page", || {
        let t = visible(&futures_now(sender.clone().get(&format!("/sent/{doc}"))).text());
        (t.contains("哈尔滨市人民政府") && t.contains("大庆市人民政府")).then_some(t)
    })
    .await;
    assert!(
        !sent.contains("harbin-gov") && !sent.contains("daqing-gov"),
        "{sent}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_send_is_fixed_and_sent_again_from_the_problems_page() {
    if !browser::available() {
        return;
    }
    let u = named_units().await;
    // A unit that does not exist: the hub refuses, the file goes to failed/.
    u.net.sidecar(
        "prov-gov",
        "nowhere-gov",
        "经费请示.txt",
        "title = \"关于拨付防汛经费的请示\"\n",
    );
    u.net
        .drop_file("prov-gov", "nowhere-gov", "经费请示.txt", b"please fund");
    let failed = u.net.root("prov-gov").join("failed");
    wait_until("the drop in failed/", || {
        failed.join("经费请示.txt.error.txt").exists().then_some(())
    })
    .await;

    let mut chrome = Chrome::start().await;
    let prov = base(&u.prov);
    chrome.log_in(&prov, "wang", PASSWORD).await;
    let problems = chrome
        .wait_for_text(&format!("{prov}/problems"), "关于拨付防汛经费的请示")
        .await;
    assert!(
        problems.contains("交换中心不认识收文单位：nowhere-gov"),
        "the reason is not said in Chinese: {problems}"
    );
    assert!(
        problems.contains("重新发送") && problems.contains("删除"),
        "{problems}"
    );
    assert!(
        problems.contains("问题 1"),
        "the nav does not count it: {problems}"
    );
    chrome.screenshot("day-problems").await;

    // The clerk fixes the recipient on the page and sends it again.
    chrome
        .type_into("form.resend input[name=to]", "harbin-gov")
        .await;
    chrome.click("form.resend button[type=submit]").await;
    let deadline = tokio::time::Instant::now() + gongwen_tests::WAIT;
    let url = loop {
        let url = chrome.url().await;
        if url.contains("/sent/") {
            break url;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the resend did not lead to the document: {}",
            chrome.text().await
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    // The page follows the document until the hub has it.
    let sent = chrome.wait_for_text(&url, "签收情况").await;
    assert!(sent.contains("关于拨付防汛经费的请示"), "{sent}");
    let docs = wait_inbox(&u.net.root("harbin-gov"), "prov-gov", 1).await;
    assert_eq!(
        std::fs::read(docs[0].join("经费请示.txt")).unwrap(),
        b"please fund"
    );
    let after = chrome
        .wait_for_text(&format!("{prov}/problems"), "没有")
        .await;
    assert!(!after.contains("关于拨付防汛经费的请示"), "{after}");
    assert_eq!(
        std::fs::read_dir(&failed).unwrap().count(),
        0,
        "something was left in failed/"
    );
    chrome.quit().await;

    // 删除: another that cannot go, deleted with its reason and sidecar.
    u.net.drop_file("prov-gov", "nowhere-gov", "作废.txt", b"x");
    wait_until("the second drop in failed/", || {
        failed.join("作废.txt.error.txt").exists().then_some(())
    })
    .await;
    let mut b = browser(&u.prov);
    b.log_in("wang", PASSWORD).await;
    let page = b.get("/problems").await;
    let csrf = page.csrf().unwrap();
    for bad in ["../state", "作废.txt.error.txt", "nothing.txt"] {
        let refused = b
            .post_form("/problems/delete", &[("csrf", &csrf), ("name", bad)])
            .await;
        assert_eq!(refused.status, 409, "{bad}: {}", refused.text());
    }
    let done = b
        .post_form("/problems/delete", &[("csrf", &csrf), ("name", "作废.txt")])
        .await;
    assert_eq!(done.status, 303, "{}", done.text());
    assert_eq!(std::fs::read_dir(&failed).unwrap().count(), 0);
    assert!(u.net.root("prov-gov").join("state").exists());

    // Two clerks press 重新发送 on one document at once: it goes once, and
    // the second is told it is already gone.
    u.net
        .drop_file("prov-gov", "nowhere-gov", "两人同时.txt", b"once");
    wait_until("the third drop in failed/", || {
        failed.join("两人同时.txt.error.txt").exists().then_some(())
    })
    .await;
    let mut other = browser(&u.prov);
    other.log_in("wang", PASSWORD).await;
    let other_csrf = other.get("/problems").await.csrf().unwrap();
    let fa = [
        ("csrf", csrf.as_str()),
        ("name", "两人同时.txt"),
        ("to", "harbin-gov"),
    ];
    let fb = [
        ("csrf", other_csrf.as_str()),
        ("name", "两人同时.txt"),
        ("to", "harbin-gov"),
    ];
    let (one, two) = tokio::join!(
        b.post_form("/problems/resend", &fa),
        other.post_form("/problems/resend", &fb)
    );
    let mut statuses = [one.status, two.status];
    statuses.sort();
    assert_eq!(statuses, [303, 422], "{} / {}", one.text(), two.text());
    let loser = if one.status == 422 {
        one.text()
    } else {
        two.text()
    };
    assert!(loser.contains("可能已经重新发送或删除"), "{loser}");
    let docs = wait_inbox(&u.net.root("harbin-gov"), "prov-gov", 2).await;
    assert_eq!(docs.len(), 2, "sent twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returned_document_shows_on_the_senders_home_page_and_is_sent_again() {
    if !browser::available() {
        return;
    }
    let u = named_units().await;
    let doc = send(&u, "会议通知.pdf", "关于召开防汛工作会议的通知", false).await;
    ask_agent(
        &u.net.root("harbin-gov"),
        &Request::Reject {
            doc,
            reason: "会议时间有误，请核实".into(),
        },
    )
    .await
    .unwrap();

    let mut chrome = Chrome::start().await;
    let prov = base(&u.prov);
    chrome.log_in(&prov, "wang", PASSWORD).await;
    let home = chrome
        .wait_for_text(&format!("{prov}/"), "被退回的发文")
        .await;
    assert!(
        home.contains("关于召开防汛工作会议的通知") && home.contains("已退回 1"),
        "{home}"
    );
    chrome.screenshot("day-returned-on-home").await;
    let list = chrome
        .wait_for_text(&format!("{prov}/sent"), "已退回 1")
        .await;
    assert!(list.contains("关于召开防汛工作会议的通知"), "{list}");

    chrome
        .click(&format!("table.returned a[href='/sent/{doc}']"))
        .await;
    let page = chrome
        .wait_for_text(&format!("{prov}/sent/{doc}"), "修改后重新发送")
        .await;
    assert!(
        page.contains("会议时间有误，请核实") && page.contains("哈尔滨市人民政府"),
        "{page}"
    );
    chrome.click_and_land("a.button", "/compose?from=").await;
    let form = chrome.source().await;
    assert!(
        form.contains("value=\"关于召开防汛工作会议的通知\""),
        "the compose form is not filled from the returned one"
    );
    chrome
        .type_into("input[name=title]", "关于召开防汛工作会议的通知（更正）")
        .await;
    let main = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(main.path(), b"%PDF-1.4 corrected").unwrap();
    chrome.choose_file("input[name=main]", main.path()).await;
    chrome
        .click_and_land("form.compose button[type=submit]", "/sent/")
        .await;
    let docs = wait_inbox(&u.net.root("harbin-gov"), "prov-gov", 2).await;
    assert_eq!(docs.len(), 2);
    // Sent again: it leaves the home page and the count.
    let home = chrome.wait_for_text(&format!("{prov}/"), "待签收").await;
    assert!(!home.contains("被退回的发文"), "{home}");
    assert!(!home.contains("已退回"), "{home}");
    chrome.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_cut_off_sees_a_banner_and_its_sign_for_reaches_the_hub_once_back() {
    if !browser::available() {
        return;
    }
    let u = named_units().await;
    let doc = send(&u, "值班通知.pdf", "关于做好节日值班工作的通知", false).await;
    let Units {
        net,
        hub,
        prov: _prov,
        mut harbin,
        daqing: _daqing,
    } = u;
    let addr = hub.addr;
    hub.stop().await;
    harbin.wait_error().await;

    let mut chrome = Chrome::start().await;
    let url = base(&harbin);
    chrome.log_in(&url, "li.si", PASSWORD).await;
    let home = chrome
        .wait_for_text(&format!("{url}/"), "未连接交换中心")
        .await;
    assert!(home.contains("连上后自动送出"), "{home}");
    chrome.screenshot("day-cut-off-banner").await;
    chrome.goto(&format!("{url}/inbox/{doc}")).await;
    chrome.click("form.ack input[name=confirm]").await;
    chrome
        .click_and_land("form.ack button[type=submit]", "done=ack")
        .await;
    let signed = chrome
        .wait_for_text(&format!("{url}/inbox/{doc}"), "未送达交换中心")
        .await;
    assert!(signed.contains("已签收"), "{signed}");
    chrome.screenshot("day-signed-while-cut-off").await;

    let hub = net.start_hub_on(addr).await;
    harbin.wait_connected().await;
    wait_until("the 签收 at the hub", || {
        let v = futures_now(gongwen_tests::ask_hub(
            &hub.data_dir,
            &gongwen_hub::ops::control::Request::Status { doc },
        ));
        (v["recipients"][0]["state"] == "acknowledged").then_some(())
    })
    .await;
    let after = chrome
        .wait_for_text(&format!("{url}/inbox/{doc}"), "已签收")
        .await;
    assert!(!after.contains("未送达交换中心"), "{after}");
    assert!(!after.contains("未连接交换中心"), "{after}");
    chrome.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_printed_sign_for_slip_carries_the_receipt_and_a_code_openssl_confirms() {
    if !browser::available()
        || !gongwen_tests::tools::have_pdftotext()
        || !gongwen_tests::tools::have_openssl(false)
    {
        return;
    }
    let u = named_units().await;
    let doc = send(&u, "安全通知.pdf", "关于加强安全生产检查的通知", false).await;
    ask_agent(
        &u.net.root("harbin-gov"),
        &Request::Ack {
            doc,
            by: "李四".into(),
        },
    )
    .await
    .unwrap();

    let mut chrome = Chrome::start().await;
    let url = base(&u.harbin);
    chrome.log_in(&url, "li.si", PASSWORD).await;
    let slip = chrome
        .wait_for_text(&format!("{url}/inbox/{doc}/print/slip"), "签收单")
        .await;
    let code = slip
        .lines()
        .find_map(|l| l.trim().strip_prefix("校验码"))
        .map(|c| c.trim().to_owned())
        .unwrap_or_else(|| panic!("no code on the slip: {slip}"));
    chrome.screenshot("day-sign-for-slip").await;
    let pdf = chrome.print_pdf().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("slip.pdf"), &pdf).unwrap();
    let out = std::process::Command::new("pdftotext")
        .args(["-layout", "slip.pdf", "-"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "签收单",
        "黑龙江省人民政府",
        "哈尔滨市人民政府",
        "关于加强安全生产检查的通知",
        "李四",
        code.as_str(),
    ] {
        assert!(text.contains(want), "the printed slip lacks {want}: {text}");
    }
    assert!(!text.contains("返回"), "the navigation was printed: {text}");
    chrome.quit().await;

    // The code is the SHA-256 of the receipt's signature, as openssl
    // computes it from the evidence bundle.
    let bundle = dir.path().join("evidence");
    ask_agent(
        &u.net.root("harbin-gov"),
        &Request::Evidence {
            doc,
            out: bundle.clone(),
        },
    )
    .await
    .unwrap();
    let sig = std::fs::read_dir(&bundle)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.contains("-acknowledged-harbin-gov") && n.ends_with(".sig.der")
        })
        .expect("the 签收 receipt's signature in the bundle");
    let dgst = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-r"])
        .arg(&sig)
        .output()
        .unwrap();
    let hex = String::from_utf8_lossy(&dgst.stdout).to_uppercase();
    let expected: Vec<String> = hex.as_bytes()[..16]
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    assert_eq!(code, expected.join("-"));

    // The sender prints the same slip from its own copy of the receipt.
    let mut sender = browser(&u.prov);
    sender.log_in("wang", PASSWORD).await;
    let theirs = wait_until("the 签收 receipt at the sender", || {
        let p = futures_now(sender.clone().get(&format!("/sent/{doc}/slip/harbin-gov")));
        (p.status == 200).then_some(p.text())
    })
    .await;
    assert!(
        theirs.contains(&code) && theirs.contains("李四"),
        "{theirs}"
    );
    // And the 公文处理笺 of the received document.
    let mut clerk = browser(&u.harbin);
    clerk.log_in("li.si", PASSWORD).await;
    let handling = clerk
        .get(&format!("/inbox/{doc}/print/handling"))
        .await
        .text();
    assert!(
        handling.contains("公文处理笺")
            && handling.contains("领导批示")
            && handling.contains("李四"),
        "{handling}"
    );
}

/// A province with a supervision office whose clock can move.
struct Province {
    net: Net,
    hub: gongwen_tests::RunningHub,
    clock: gongwen_common::clock::ManualClock,
    harbin: RunningAgent,
    sup: RunningAgent,
    _prov: RunningAgent,
    _daqing: RunningAgent,
}

async fn province() -> Province {
    let net = Net::new();
    net.issue_named("prov-gov", Role::Node, "黑龙江省人民政府");
    net.issue_named("harbin-gov", Role::Node, "哈尔滨市人民政府");
    net.issue_named("daqing-gov", Role::Node, "大庆市人民政府");
    net.issue_named("prov-supervision", Role::Supervisor, "省政府督查室");
    let clock = gongwen_common::clock::ManualClock::new(time::OffsetDateTime::now_utc());
    let hub = net
        .start_hub_with(
            "127.0.0.1:0".parse().unwrap(),
            std::sync::Arc::new(clock.clone()),
        )
        .await;
    let console = "[console]\nlisten = \"127.0.0.1:0\"";
    for (id, user, name) in [
        ("harbin-gov", "li.si", "李四"),
        ("prov-supervision", "zhao", "赵督查"),
    ] {
        let accounts = net.root(id).join("state").join("accounts.json");
        Accounts::edit(&accounts, |a| {
            a.add_user(user, name, UserRole::Clerk, PASSWORD, 0)
        })
        .unwrap();
    }
    let prov = net.start_agent("prov-gov", hub.addr);
    let daqing = net.start_agent("daqing-gov", hub.addr);
    let harbin = RunningAgent::start(net.agent_config_with("harbin-gov", hub.addr, console));
    let sup = RunningAgent::start(net.agent_config_with("prov-supervision", hub.addr, console));
    hub.wait_ready(&["prov-gov", "harbin-gov", "daqing-gov", "prov-supervision"])
        .await;
    Province {
        net,
        hub,
        clock,
        harbin,
        sup,
        _prov: prov,
        _daqing: daqing,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervision_office_finds_late_units_by_name_and_sends_a_press_they_read() {
    if !browser::available() {
        return;
    }
    let p = province().await;
    // To the group `cities`: harbin-gov and daqing-gov.
    p.net.sidecar(
        "prov-gov",
        "cities",
        "汛期值班.txt",
        "urgency = \"urgent\"\ndoc_number = \"黑政发〔2026〕99号\"\ntitle = \"关于汛期值班的通知\"\n",
    );
    p.net
        .drop_file("prov-gov", "cities", "汛期值班.txt", b"please sign");
    let docs = wait_inbox(&p.net.root("harbin-gov"), "prov-gov", 1).await;
    let doc: DocId = docs[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .parse()
        .unwrap();
    wait_inbox(&p.net.root("daqing-gov"), "prov-gov", 1).await;
    // By the hub's clock: urgent (4 h) and unsigned, urged at 5 h and
    // put to the supervision office at 7 h.
    p.clock.advance(std::time::Duration::from_secs(5 * 3600));
    p.hub.handle.escalate_now().await.unwrap();
    p.clock.advance(std::time::Duration::from_secs(2 * 3600));
    p.hub.handle.escalate_now().await.unwrap();

    // Filtered by part of a name: 大庆 finds daqing-gov only.
    let mut b = browser(&p.sup);
    b.log_in("zhao", PASSWORD).await;
    let daqing = visible(
        &b.get(&format!("/supervision?unit={}", form_encode("大庆")))
            .await
            .text(),
    );
    assert!(daqing.contains("大庆市人民政府"), "{daqing}");
    assert!(daqing.contains("共 1 项"), "{daqing}");
    let by_sender = visible(
        &b.get(&format!("/supervision?sender={}", form_encode("黑龙江省")))
            .await
            .text(),
    );
    assert!(by_sender.contains("共 2 项"), "{by_sender}");
    let nobody = b
        .get(&format!("/supervision?unit={}", form_encode("绥化")))
        .await
        .text();
    assert!(nobody.contains("没有超期未签收或未答复的公文"), "{nobody}");
    let csv = String::from_utf8(b.get("/supervision/overdue.csv").await.body).unwrap();
    assert!(
        csv.contains(
            "大庆市人民政府,未签收,黑龙江省人民政府,黑政发〔2026〕99号,关于汛期值班的通知,加急"
        ),
        "{csv}"
    );

    // 督办单 to daqing-gov from the overdue list, in the browser.
    let mut chrome = Chrome::start().await;
    let url = base(&p.sup);
    chrome.log_in(&url, "zhao", PASSWORD).await;
    chrome
        .wait_for_text(
            &format!("{url}/supervision?unit={}", form_encode("大庆")),
            "大庆市人民政府",
        )
        .await;
    chrome.screenshot("day-supervision-by-name").await;
    chrome
        .type_into(
            "form.press input[name=words]",
            "请于今日下班前签收并说明逾期原因",
        )
        .await;
    chrome
        .click_and_land("form.press button[type=submit]", "done=press")
        .await;
    let done = chrome
        .wait_for_text(
            &format!("{url}/supervision?doc={doc}&done=press"),
            "已发出督办单",
        )
        .await;
    assert!(done.contains("关于汛期值班的通知"), "{done}");
    chrome.quit().await;

    // daqing-gov reads it beside the document, with the office's words;
    // harbin-gov got none.
    let daqing_doc = p
        .net
        .root("daqing-gov")
        .join("inbox")
        .join("prov-gov")
        .join(doc.to_string());
    let notice = wait_until("the 督办单 beside daqing-gov's copy", || {
        std::fs::read_dir(&daqing_doc)
            .ok()?
            .flatten()
            .find_map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.starts_with("督办单-")
                    .then(|| std::fs::read_to_string(e.path()).ok())
                    .flatten()
            })
    })
    .await;
    assert!(
        notice.contains("督办单位：省政府督查室（prov-supervision）")
            && notice.contains("请于今日下班前签收并说明逾期原因"),
        "{notice}"
    );
    assert!(
        english(&notice, &["prov-supervision", "prov-gov"]).is_empty(),
        "{notice}"
    );
    let harbin_doc = p
        .net
        .root("harbin-gov")
        .join("inbox")
        .join("prov-gov")
        .join(doc.to_string());
    assert!(
        !std::fs::read_dir(&harbin_doc)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("督办单-"))
    );
    // Counted: the hub's urge count went up for daqing-gov only.
    let v = gongwen_tests::ask_hub(
        &p.hub.data_dir,
        &gongwen_hub::ops::control::Request::Status { doc },
    )
    .await;
    let count = |id: &str| {
        v["recipients"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["recipient"] == id)
            .map(|r| r["urge_count"].as_u64().unwrap())
            .unwrap()
    };
    assert_eq!(count("daqing-gov"), count("harbin-gov") + 1, "{v}");

    // The office sees the 督办 notices the ladder sent it, all in Chinese.
    let page = visible(&b.get("/supervision").await.text());
    let doc_text = doc.to_string();
    let words = english(
        &page,
        &[doc_text.as_str(), "zhao", "CSV", "hub", "prov-supervision"],
    );
    assert!(
        words.is_empty(),
        "English on /supervision: {words:?}\n{page}"
    );
    let notices = page
        .split_once("收到的督办通知")
        .map(|(_, rest)| rest.to_owned())
        .unwrap_or_default();
    assert!(
        notices.contains("关于汛期值班的通知") && notices.contains("大庆市人民政府"),
        "{page}"
    );
    drop(p.harbin);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_english_sentence_or_command_line_reaches_a_clerks_pages_or_notices() {
    let u = named_units().await;
    let kept = send(&u, "通知.pdf", "关于做好冬季安全生产工作的通知", true).await;
    let returned = send(&u, "函.pdf", "关于商请支持的函", false).await;
    let waiting = send(&u, "待办.pdf", "关于报送统计数据的通知", false).await;
    let root = u.net.root("harbin-gov");
    ask_agent(
        &root,
        &Request::Ack {
            doc: kept,
            by: "李四".into(),
        },
    )
    .await
    .unwrap();
    ask_agent(
        &root,
        &Request::Reject {
            doc: returned,
            reason: "不属于本单位职责".into(),
        },
    )
    .await
    .unwrap();
    // An urging from the sender, and a drop that cannot be sent.
    let mut sender = browser(&u.prov);
    sender.log_in("wang", PASSWORD).await;
    let page = sender.get(&format!("/sent/{waiting}")).await;
    let urged = sender
        .post_form(
            &format!("/sent/{waiting}/urge"),
            &[("csrf", &page.csrf().unwrap())],
        )
        .await;
    assert_eq!(urged.status, 303, "{}", urged.text());
    u.net.drop_file("prov-gov", "nowhere-gov", "错发.txt", b"x");
    u.net.drop_file("prov-gov", "harbin-gov", "空白.txt", b"");
    let failed = u.net.root("prov-gov").join("failed");
    wait_until("both drops in failed/", || {
        (failed.join("错发.txt.error.txt").exists() && failed.join("空白.txt.error.txt").exists())
            .then_some(())
    })
    .await;
    let notice_dir = root
        .join("inbox")
        .join("prov-gov")
        .join(waiting.to_string());
    let urge = wait_until("the 催办通知 beside the document", || {
        std::fs::read_to_string(notice_dir.join("催办通知-1.txt")).ok()
    })
    .await;

    // What the data itself carries (ids, file names) is not the console's
    // English.
    let docs: Vec<String> = [kept, returned, waiting]
        .iter()
        .map(DocId::to_string)
        .collect();
    let mut known: Vec<&str> = docs.iter().map(String::as_str).collect();
    known.extend([
        "prov-gov",
        "harbin-gov",
        "daqing-gov",
        "nowhere-gov",
        "通知.pdf",
        "函.pdf",
        "待办.pdf",
        "错发.txt",
        "空白.txt",
        "li.si",
        "wang",
        "cities",
        "reporting",
        "hub",
        "127.0.0.1",
    ]);
    let mut clerk = browser(&u.harbin);
    clerk.log_in("li.si", PASSWORD).await;
    let mut checked = 0;
    // Whose console: harbin-gov's clerk (true) or prov-gov's (false).
    for (at_harbin, path) in [
        (true, "/".to_owned()),
        (true, "/inbox".to_owned()),
        (true, format!("/inbox/{kept}")),
        (true, format!("/inbox/{returned}")),
        (true, format!("/inbox/{waiting}")),
        (true, format!("/inbox/{kept}/print/slip")),
        (true, format!("/inbox/{returned}/print/slip")),
        (true, format!("/inbox/{kept}/print/handling")),
        (true, "/compose".to_owned()),
        (true, "/status".to_owned()),
        (true, "/problems".to_owned()),
        (false, "/".to_owned()),
        (false, "/sent".to_owned()),
        (false, format!("/sent/{kept}")),
        (false, format!("/sent/{returned}")),
        (false, format!("/sent/{kept}/slip/harbin-gov")),
        (false, "/problems".to_owned()),
        (false, format!("/compose?from={returned}")),
    ] {
        let who = if at_harbin { &mut clerk } else { &mut sender };
        let page = who.get(&path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.text());
        let words = english(&visible(&page.text()), &known);
        assert!(
            words.is_empty(),
            "English on {path}: {words:?}\n{}",
            visible(&page.text())
        );
        checked += 1;
    }
    assert_eq!(checked, 18);
    // The notices and reasons a clerk reads in the folders.
    for (what, text) in [
        ("催办通知", urge),
        (
            "failed/错发.txt.error.txt",
            std::fs::read_to_string(failed.join("错发.txt.error.txt")).unwrap(),
        ),
        (
            "failed/空白.txt.error.txt",
            std::fs::read_to_string(failed.join("空白.txt.error.txt")).unwrap(),
        ),
        (
            "outbox/单位名录.txt",
            std::fs::read_to_string(u.net.root("prov-gov").join("outbox").join("单位名录.txt"))
                .unwrap(),
        ),
    ] {
        // The folder names a clerk types are ids and paths, as they are.
        let known = [
            known.as_slice(),
            &[
                "outbox",
                "meta",
                "toml",
                "main",
                "qiqihar-gov",
                "mudanjiang-gov",
            ],
        ]
        .concat();
        let words = english(&text, &known);
        assert!(words.is_empty(), "English in {what}: {words:?}\n{text}");
        assert!(
            !text.contains("gongwen-agent"),
            "a command line in {what}: {text}"
        );
    }
}
