//! The unit's web console, over HTTP: accounts and sessions, CSRF, the
//! pages a clerk uses, downloads that never render, the JSON API. A real
//! hub and real agents on loopback; the console of each agent on port 0.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gongwen_agent::unit::accounts::{Accounts, UserRole};
use gongwen_agent::unit::store::{ReceivedRecord, ReceivedState};
use gongwen_common::envelope::Urgency;
use gongwen_common::{DocId, NodeId, Role};
use gongwen_tests::web::{Browser, Page};
use gongwen_tests::{Net, RunningAgent, agent_status, wait_inbox, wait_until};

use gongwen_tests::web::{PASSWORD, Units, units};

fn browser(agent: &RunningAgent) -> Browser {
    Browser::new(agent.console.expect("the agent has a console"))
}

/// Send one document from prov-gov to harbin-gov and wait for it.
async fn send(u: &Units, name: &str, body: &[u8], sidecar: Option<&str>) -> DocId {
    if let Some(toml) = sidecar {
        u.net.sidecar("prov-gov", "harbin-gov", name, toml);
    }
    let before = gongwen_tests::inbox_docs(&u.net.root("harbin-gov"), "prov-gov").len();
    u.net.drop_file("prov-gov", "harbin-gov", name, body);
    let docs = wait_inbox(&u.net.root("harbin-gov"), "prov-gov", before + 1).await;
    let known: Vec<String> = docs
        .iter()
        .map(|d| d.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    // The newest (ids are time-ordered).
    let id = DocId::parse(known.iter().max().unwrap()).unwrap();
    u.harbin.wait_received(id).await;
    id
}

fn state_of(agent: &RunningAgent, doc: DocId) -> ReceivedState {
    agent.parts.store().received(doc).unwrap().unwrap().0.state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_needs_a_login_and_the_session_cookie_is_httponly_and_strict() {
    let u = units().await;
    let mut b = browser(&u.harbin);
    for path in [
        "/",
        "/inbox",
        "/inbox/01a24a16-3dbc-764d-ad98-3fc6f6ddf6ac",
        "/nothing",
    ] {
        let p = b.get(path).await;
        assert_eq!(p.status, 303, "{path} without a session: {}", p.status);
        assert_eq!(p.location().as_deref(), Some("/login"), "{path}");
    }
    let api = b.get("/api/v1/inbox").await;
    assert_eq!(api.status, 401);
    let form = b.get("/login").await;
    assert_eq!(form.status, 200);
    let html = form.text();
    for field in [
        "name=\"username\"",
        "name=\"password\"",
        "name=\"csrf\"",
        "type=\"submit\"",
    ] {
        assert!(html.contains(field), "the login form lacks {field}");
    }
    let csp = form.header("content-security-policy").unwrap();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(!html.contains("<script"), "a page carries a script");

    let csrf = form.csrf().unwrap();
    let wrong = b
        .post_form(
            "/login",
            &[
                ("username", "li.si"),
                ("password", "not it"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(wrong.status, 401);
    assert!(
        wrong.text().contains("用户名或密码不正确"),
        "{}",
        wrong.text()
    );
    assert!(!b.cookies.contains_key("gongwen_session"));

    let csrf = wrong.csrf().unwrap();
    let ok = b
        .post_form(
            "/login",
            &[
                ("username", "li.si"),
                ("password", PASSWORD),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(ok.status, 303, "{}", ok.text());
    let cookie = ok
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("gongwen_session="))
        .expect("a session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let home = b.get("/").await;
    assert_eq!(home.status, 200);
    assert!(home.text().contains("李四") && home.text().contains("待签收"));

    // Logging out needs the form's token too; then the cookie is no good.
    let csrf = home.csrf().unwrap();
    let out = b.post_form("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 303);
    assert_eq!(b.get("/").await.status, 303);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_failed_logins_lock_the_account_for_five_minutes_and_the_page_says_so() {
    let u = units().await;
    let mut b = browser(&u.harbin);
    let mut last = None;
    for _ in 0..5 {
        last = Some(b.try_log_in("li.si", "guess").await);
    }
    let locked = last.unwrap();
    assert!(locked.text().contains("已锁定"), "{}", locked.text());
    assert!(locked.text().contains("5 分钟"), "{}", locked.text());
    // Even the right password is refused now, with the same words.
    let refused = b.try_log_in("li.si", PASSWORD).await;
    assert_eq!(refused.status, 403);
    assert!(refused.text().contains("已锁定"));
    assert!(!b.cookies.contains_key("gongwen_session"));
    // Another account is not locked.
    let mut other = browser(&u.prov);
    other.log_in("wang", PASSWORD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clerk_signs_for_a_document_and_a_post_without_a_valid_csrf_token_changes_nothing() {
    let u = units().await;
    let doc = send(&u, "通知.txt", b"please sign", None).await;
    let mut b = browser(&u.harbin);
    b.log_in("li.si", PASSWORD).await;
    let home = b.get("/").await;
    assert!(home.text().contains(&doc.to_string()), "{}", home.text());
    let page = b.get(&format!("/inbox/{doc}")).await;
    assert_eq!(page.status, 200);
    let csrf = page.csrf().unwrap();
    let ack = format!("/inbox/{doc}/ack");
    for bad in [vec![("by", "李四")], vec![("by", "李四"), ("csrf", "0000")]] {
        let refused = b.post_form(&ack, &bad).await;
        assert_eq!(refused.status, 403, "{}", refused.text());
        assert_eq!(
            state_of(&u.harbin, doc),
            ReceivedState::Delivered,
            "a refused POST changed it"
        );
    }
    // The same form from a browser without the session is refused too.
    let mut stranger = browser(&u.harbin);
    let refused = stranger
        .post_form(&ack, &[("by", "x"), ("csrf", &csrf)])
        .await;
    assert_eq!(refused.status, 403);

    let done = b.post_form(&ack, &[("by", "李四"), ("csrf", &csrf)]).await;
    assert_eq!(done.status, 303, "{}", done.text());
    assert_eq!(state_of(&u.harbin, doc), ReceivedState::Acknowledged);
    assert!(
        b.get(&format!("/inbox/{doc}"))
            .await
            .text()
            .contains("已签收")
    );
    // The sender holds the receipt, naming the clerk.
    let prov_root = u.net.root("prov-gov");
    let st = wait_until("the sender's acknowledged receipt", || {
        let st = futures_now(agent_status(&prov_root));
        st.into_iter().find(|d| {
            d.doc_id == doc.to_string() && d.recipients.iter().all(|r| r.state == "acknowledged")
        })
    })
    .await;
    assert_eq!(st.recipients[0].acknowledged_by.as_deref(), Some("李四"));
    // Returning needs a reason, and a second answer is refused.
    let again = b
        .post_form(
            &format!("/inbox/{doc}/reject"),
            &[("reason", "x"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(again.status, 409);
    assert!(again.text().contains("已经由"), "{}", again.text());
}

/// Run a future to completion from a synchronous probe.
fn futures_now<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_title_and_file_name_show_as_text_and_files_are_only_downloads() {
    let u = units().await;
    let hostile = "<img src=x onerror=alert(1)>";
    let script = b"<html><script>alert(document.cookie)</script></html>";
    let doc = send(
        &u,
        "正文<b>.html",
        script,
        Some(&format!(
            "title = \"{hostile}\"\nnote = \"<script>alert(2)</script>\"\n"
        )),
    )
    .await;
    let mut b = browser(&u.harbin);
    b.log_in("li.si", PASSWORD).await;
    for path in ["/".to_owned(), "/inbox".to_owned(), format!("/inbox/{doc}")] {
        let html = b.get(&path).await.text();
        assert!(!html.contains(hostile), "{path} shows the title as HTML");
        assert!(
            html.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{path}: {html}"
        );
        assert!(
            !html.contains("<b>.html"),
            "{path} shows a file name as HTML"
        );
        assert!(!html.contains("<script"), "{path}");
    }
    let got = b
        .get(&format!(
            "/inbox/{doc}/files/{}",
            gongwen_tests::web::form_encode("正文<b>.html").replace('+', "%20")
        ))
        .await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.body, script);
    let disposition = got.header("content-disposition").unwrap();
    assert!(disposition.starts_with("attachment;"), "{disposition}");
    assert!(
        disposition.contains("filename*=UTF-8''%E6%AD%A3%E6%96%87%3Cb%3E.html"),
        "{disposition}"
    );
    assert_eq!(
        got.header("content-type").as_deref(),
        Some("application/octet-stream")
    );
    assert_eq!(
        got.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
    assert!(got.header("content-security-policy").is_some());
    // Only files the signed header lists; nothing else under the agent's root.
    for bad in [
        "metadata.json",
        "..%2F..%2F..%2Fstate%2Faccounts.json",
        "nothing.txt",
    ] {
        let p = b.get(&format!("/inbox/{doc}/files/{bad}")).await;
        assert_eq!(p.status, 404, "{bad}: {}", p.status);
    }
}

fn synthetic(i: u32, sender: &str, state: ReceivedState) -> ReceivedRecord {
    ReceivedRecord {
        doc_id: DocId::generate(),
        sender: NodeId::parse(sender).unwrap(),
        title: format!("第{i}号通知"),
        doc_number: format!("黑政发〔2026〕{i}号"),
        doc_type: "通知".into(),
        urgency: Urgency::Normal,
        deadline: None,
        received_ms: 1_796_000_000_000 + i64::from(i),
        state,
        reason: None,
        digest: String::new(),
        urge_count: 0,
        answer: None,
        answered_ms: None,
        recall_reason: None,
        sender_name: None,
    }
}

fn titles(p: &Page) -> usize {
    p.text().matches("号通知</a>").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_are_paged_and_filtered_in_the_store() {
    let u = units().await;
    // 120 records straight into the store (the pages read only the store).
    for i in 0..120u32 {
        let (sender, state) = match i % 3 {
            0 => ("daqing-gov", ReceivedState::Acknowledged),
            _ => ("prov-gov", ReceivedState::Delivered),
        };
        let rec = synthetic(i, sender, state);
        u.harbin
            .parts
            .store()
            .record_received(&rec, b"r", b"h")
            .unwrap();
    }
    let mut b = browser(&u.harbin);
    b.log_in("li.si", PASSWORD).await;
    let first = b.get("/inbox").await;
    assert_eq!(titles(&first), gongwen_agent::front::console::PAGE_SIZE);
    assert!(first.text().contains("下一页"));
    let third = b.get("/inbox?page=3").await;
    assert_eq!(
        titles(&third),
        120 - 2 * gongwen_agent::front::console::PAGE_SIZE
    );
    assert!(!third.text().contains("下一页"));
    let daqing = b.get("/inbox?sender=daqing-gov").await;
    assert_eq!(titles(&daqing), 40);
    let acked = b.get("/inbox?state=acknowledged&q=%E7%AC%AC3").await; // 第3
    // 第3号, 第30…39号 among i % 3 == 0: 3, 30, 33, 36, 39.
    assert_eq!(titles(&acked), 5, "{}", acked.text());
    let pending = b.get("/").await;
    assert_eq!(titles(&pending), gongwen_agent::front::console::PAGE_SIZE);
    assert!(!pending.text().contains("daqing-gov"));
    // A date range (Beijing days): the records are all from one instant
    // (1_796_000_000_000 ms + i: 2026-11-30 in Beijing time).
    let that_day = b.get("/inbox?from=2026-11-30&to=2026-11-30&page=3").await;
    assert_eq!(titles(&that_day), 20, "{}", that_day.text());
    let before = b.get("/inbox?to=2026-11-29").await;
    assert_eq!(titles(&before), 0);
    let after = b.get("/inbox?from=2026-12-01").await;
    assert_eq!(titles(&after), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_takes_bearer_tokens_for_scripts_and_refuses_everyone_else() {
    let u = units().await;
    let doc = send(&u, "函.txt", b"api", None).await;
    let accounts = u.net.root("harbin-gov").join("state").join("accounts.json");
    let (_, token) = Accounts::edit(&accounts, |a| a.create_token("li.si", 0)).unwrap();
    let mut b = browser(&u.harbin);
    let bearer = format!("Bearer {token}");
    let list = b
        .send(
            "GET",
            "/api/v1/inbox?pending=true",
            &[("authorization", &bearer)],
            vec![],
        )
        .await;
    assert_eq!(list.status, 200, "{}", list.text());
    let rows: serde_json::Value = serde_json::from_slice(&list.body).unwrap();
    assert_eq!(rows[0]["doc_id"], doc.to_string());
    assert_eq!(rows[0]["state"], "delivered");
    let one = b
        .send(
            "GET",
            &format!("/api/v1/inbox/{doc}"),
            &[("authorization", &bearer)],
            vec![],
        )
        .await;
    let one: serde_json::Value = serde_json::from_slice(&one.body).unwrap();
    assert_eq!(one["title"], "函");
    let prov_accounts = u.net.root("prov-gov").join("state").join("accounts.json");
    let (_, prov_token) = Accounts::edit(&prov_accounts, |a| a.create_token("wang", 0)).unwrap();
    let mut prov = browser(&u.prov);
    let sent = prov
        .send(
            "GET",
            "/api/v1/sent",
            &[("authorization", &format!("Bearer {prov_token}"))],
            vec![],
        )
        .await;
    let sent: serde_json::Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(sent[0]["doc_id"], doc.to_string(), "{sent}");
    assert_eq!(sent[0]["recipients"][0]["recipient"], "harbin-gov");
    for wrong in ["Bearer gw_nothing", "Basic bGk6cHc="] {
        let p = b
            .send("GET", "/api/v1/inbox", &[("authorization", wrong)], vec![])
            .await;
        assert_eq!(p.status, 401, "{wrong}");
    }
    // A logged-in page's own call needs its CSRF token in a header.
    let mut session = browser(&u.harbin);
    session.log_in("li.si", PASSWORD).await;
    let refused = session
        .send(
            "POST",
            &format!("/api/v1/inbox/{doc}/ack"),
            &[("content-type", "application/json")],
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(state_of(&u.harbin, doc), ReceivedState::Delivered);
    let acked = b
        .send(
            "POST",
            &format!("/api/v1/inbox/{doc}/ack"),
            &[
                ("authorization", &bearer),
                ("content-type", "application/json"),
            ],
            r#"{"by": "脚本"}"#.as_bytes().to_vec(),
        )
        .await;
    assert_eq!(acked.status, 200, "{}", acked.text());
    assert_eq!(state_of(&u.harbin, doc), ReceivedState::Acknowledged);
    // A revoked token is refused.
    let id = Accounts::load(&accounts).unwrap().tokens[0].id.clone();
    Accounts::edit(&accounts, |a| a.revoke_token(&id)).unwrap();
    let p = b
        .send(
            "GET",
            "/api/v1/inbox",
            &[("authorization", &bearer)],
            vec![],
        )
        .await;
    assert_eq!(p.status, 401);
    let _ = &u.prov;
}

/// The row of `unit` in a 签收情况 table, as text.
fn row_of(page: &Page, unit: &str) -> String {
    let html = page.text();
    let start = html
        .find(&format!("<td>{unit}</td>"))
        .unwrap_or_else(|| panic!("no row for {unit}: {html}"));
    let end = html[start..].find("</tr>").unwrap() + start;
    html[start..end].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sender_follows_signing_urges_those_who_have_not_signed_and_recalls() {
    let u = units().await;
    u.net
        .drop_file("prov-gov", "cities", "通知.txt", b"to both cities");
    let harbin_docs = wait_inbox(&u.net.root("harbin-gov"), "prov-gov", 1).await;
    wait_inbox(&u.net.root("daqing-gov"), "prov-gov", 1).await;
    let doc = harbin_docs[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();

    // harbin-gov's clerk signs for it in the console (once the agent has
    // recorded what its inbox folder already shows).
    let mut clerk = browser(&u.harbin);
    clerk.log_in("li.si", PASSWORD).await;
    let csrf = wait_until("the document's page with its 签收 form", || {
        futures_now(clerk.clone().get(&format!("/inbox/{doc}"))).csrf()
    })
    .await;
    let signed = clerk
        .post_form(
            &format!("/inbox/{doc}/ack"),
            &[("by", "李四"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(signed.status, 303);

    let mut sender = browser(&u.prov);
    sender.log_in("wang", PASSWORD).await;
    // daqing-gov's delivered receipt may come after harbin-gov's 签收:
    // the page is read once the hub holds both.
    let page = wait_until("harbin-gov signed for it, seen by the sender", || {
        let p = futures_now(sender.clone().get(&format!("/sent/{doc}")));
        (row_of(&p, "harbin-gov").contains("已签收")
            && !row_of(&p, "daqing-gov").contains("待送达"))
        .then_some(p)
    })
    .await;
    let harbin = row_of(&page, "harbin-gov");
    assert!(
        harbin.contains("李四") && harbin.contains("主送"),
        "{harbin}"
    );
    let daqing = row_of(&page, "daqing-gov");
    assert!(daqing.contains("已送达"), "{daqing}");
    // The deadline the hub enforces (24 h for a normal document here).
    assert!(
        daqing.matches("20").count() >= 2,
        "no deadline shown: {daqing}"
    );
    // The list counts the receipts this unit holds; the page above asks
    // the hub, which may know a moment sooner (the receipt is pushed).
    wait_until("the sent list to count harbin-gov's 签收", || {
        let list = futures_now(sender.clone().get("/sent"));
        list.text().contains("已签收 1 / 共 2").then_some(())
    })
    .await;

    // 催办 needs the form's token, and reaches only daqing-gov.
    let refused = sender.post_form(&format!("/sent/{doc}/urge"), &[]).await;
    assert_eq!(refused.status, 403);
    let csrf = page.csrf().unwrap();
    let urged = sender
        .post_form(&format!("/sent/{doc}/urge"), &[("csrf", &csrf)])
        .await;
    assert_eq!(urged.status, 303, "{}", urged.text());
    let page = sender.get(&format!("/sent/{doc}")).await;
    assert!(
        row_of(&page, "daqing-gov").contains("<td class=\"num\">1</td>"),
        "{}",
        row_of(&page, "daqing-gov")
    );
    assert!(row_of(&page, "harbin-gov").contains("<td class=\"num\">0</td>"));
    // The same from the command line's control request.
    let v = gongwen_tests::ask_agent(
        &u.net.root("prov-gov"),
        &gongwen_agent::front::control::Request::Urge {
            doc: DocId::parse(&doc).unwrap(),
            units: vec![],
        },
    )
    .await
    .unwrap();
    assert_eq!(v["urged"], serde_json::json!(["daqing-gov"]));
    let daqing_dir = u
        .net
        .root("daqing-gov")
        .join("inbox")
        .join("prov-gov")
        .join(&doc);
    wait_until("daqing-gov's urging notices", || {
        daqing_dir.join("催办通知-2.txt").exists().then_some(())
    })
    .await;

    // 撤回: daqing-gov's copy is withdrawn, harbin-gov's signed one stays.
    let csrf = page.csrf().unwrap();
    let recalled = sender
        .post_form(
            &format!("/sent/{doc}/recall"),
            &[("reason", "内容有误"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(recalled.status, 303, "{}", recalled.text());
    let page = sender.get(&format!("/sent/{doc}")).await;
    assert!(
        row_of(&page, "daqing-gov").contains("已撤回"),
        "{}",
        page.text()
    );
    assert!(row_of(&page, "harbin-gov").contains("已签收"));
    assert!(
        !page.text().contains("/urge\""),
        "urge offered when nobody is left to urge"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_composed_in_the_console_arrives_byte_identical_and_mistakes_are_shown_on_the_form()
 {
    let u = units().await;
    let mut b = browser(&u.prov);
    b.log_in("wang", PASSWORD).await;
    // The recipients come from the hub's directory, by display name.
    let form = wait_until("harbin-gov among the recipients", || {
        let p = futures_now(b.clone().get("/compose"));
        p.text().contains("value=\"harbin-gov\"").then_some(p)
    })
    .await;
    assert!(form.text().contains("组：cities"), "{}", form.text());
    let csrf = form.csrf().unwrap();
    let main = "关于做好冬季安全生产工作的通知\n".repeat(100).into_bytes();
    let sheet: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let fields = |to: &'static str, more: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("to", to.to_owned()),
            ("to_more", more.to_owned()),
            ("cc", "daqing-gov".to_owned()),
            ("title", "关于做好冬季安全生产工作的通知".to_owned()),
            ("doc_number", "黑政发〔2026〕12号".to_owned()),
            ("doc_type", "通知".to_owned()),
            ("urgency", "urgent".to_owned()),
            ("deadline", "3d".to_owned()),
            ("operator", "王五".to_owned()),
            ("phone", "0451-12345678".to_owned()),
            ("note", "请于三日内签收".to_owned()),
            ("reply", "report".to_owned()),
            ("reply_by", "5d".to_owned()),
        ]
    };
    let as_refs = |v: &[(&'static str, String)]| -> Vec<(&'static str, String)> { v.to_vec() };
    let send = async |b: &mut Browser, f: Vec<(&'static str, String)>, with_files: bool| {
        let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let files: Vec<(&str, &str, &[u8])> = if with_files {
            vec![
                ("main", "正文.txt", &main[..]),
                ("attachments", "附件1.xlsx", &sheet[..]),
            ]
        } else {
            vec![]
        };
        b.post_multipart("/compose", &pairs, &files).await
    };

    // Mistakes are shown on the form, with what was typed kept.
    let no_one = send(&mut b, as_refs(&fields("", "")), true).await;
    assert_eq!(no_one.status, 422);
    assert!(
        no_one.text().contains("至少选一个主送"),
        "{}",
        no_one.text()
    );
    assert!(
        no_one.text().contains("黑政发〔2026〕12号"),
        "input not kept"
    );
    let unknown = send(&mut b, as_refs(&fields("harbin-gov", "nobody-gov")), true).await;
    assert_eq!(unknown.status, 422);
    assert!(unknown.text().contains("nobody-gov"), "{}", unknown.text());
    let mut bad_due = fields("harbin-gov", "");
    bad_due.last_mut().unwrap().1 = "tomorrow".into();
    let bad_due = send(&mut b, bad_due, true).await;
    assert_eq!(bad_due.status, 422);
    assert!(bad_due.text().contains("tomorrow"), "{}", bad_due.text());
    let no_file = send(&mut b, as_refs(&fields("harbin-gov", "")), false).await;
    assert_eq!(no_file.status, 422);
    assert!(no_file.text().contains("正文"));
    // Without the form's token nothing is read, let alone sent.
    let mut forged = fields("harbin-gov", "");
    forged[0].1 = "0000".into();
    let refused = send(&mut b, forged, true).await;
    assert_eq!(refused.status, 403);
    let spool = u.net.root("prov-gov").join("state").join("spool");
    assert_eq!(
        std::fs::read_dir(&spool).unwrap().count(),
        0,
        "a refused compose claimed something"
    );

    let sent = send(&mut b, as_refs(&fields("harbin-gov", "")), true).await;
    assert_eq!(sent.status, 303, "{}", sent.text());
    let follow = sent.location().unwrap();
    assert!(follow.starts_with("/sent/"), "{follow}");
    let docs = wait_inbox(&u.net.root("harbin-gov"), "prov-gov", 1).await;
    assert_eq!(std::fs::read(docs[0].join("正文.txt")).unwrap(), main);
    assert_eq!(std::fs::read(docs[0].join("附件1.xlsx")).unwrap(), sheet);
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(docs[0].join("metadata.json")).unwrap()).unwrap();
    assert_eq!(meta["title"], "关于做好冬季安全生产工作的通知");
    assert_eq!(meta["doc_number"], "黑政发〔2026〕12号");
    assert_eq!(meta["urgency"], "urgent");
    assert_eq!(meta["operator"]["name"], "王五");
    assert_eq!(meta["cc"], serde_json::json!(["daqing-gov"]));
    assert_eq!(meta["reply"], "report", "{meta}");
    assert!(meta["reply_by"].is_string(), "{meta}");
    wait_inbox(&u.net.root("daqing-gov"), "prov-gov", 1).await;
    // The page it led to shows the 签收情况 once the hub has it.
    wait_until("the sent page with 签收情况", || {
        let p = futures_now(b.clone().get(&follow));
        p.text().contains("签收情况").then_some(())
    })
    .await;
    // Nothing was left behind in the staging folder.
    let uploads = u.net.root("prov-gov").join("state").join("uploads");
    assert_eq!(
        std::fs::read_dir(&uploads).map(|d| d.count()).unwrap_or(0),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_the_link_certificate_crl_and_clock_offset_and_problems_show_failures() {
    let net = Net::new();
    for id in ["prov-gov", "harbin-gov"] {
        net.issue(id, Role::Node);
    }
    let hub = net.start_hub().await;
    let console = "[console]\nlisten = \"127.0.0.1:0\"";
    let accounts = net.root("harbin-gov").join("state").join("accounts.json");
    Accounts::edit(&accounts, |a| {
        a.add_user("li.si", "李四", UserRole::Admin, PASSWORD, 0)
    })
    .unwrap();
    // This unit's clock runs two hours ahead of the hub's.
    let clock = std::sync::Arc::new(gongwen_common::clock::SkewedClock {
        by: std::time::Duration::from_secs(7200),
        ahead: true,
    });
    let mut harbin = RunningAgent::start_with_clock(
        net.agent_config_with("harbin-gov", hub.addr, console),
        clock,
    );
    harbin.wait_connected().await;
    let mut b = browser(&harbin);
    b.log_in("li.si", PASSWORD).await;
    let status = b.get("/status").await.text();
    assert!(status.contains("已连接"), "{status}");
    assert!(
        status.contains("本机快 7200 秒") || status.contains("本机快 7199 秒"),
        "{status}"
    );
    assert!(status.contains("本单位证书到期"), "{status}");
    let api = b.get("/api/v1/status").await;
    let v: serde_json::Value = serde_json::from_slice(&api.body).unwrap();
    assert_eq!(v["connected"], true);
    let offset = v["clock_offset_ms"].as_i64().unwrap();
    assert!((7_195_000..7_205_000).contains(&offset), "{offset}");
    assert!(v["crl_next_update"].is_string(), "{v}");
    assert!(v["certificate_days_left"].as_i64().unwrap() >= 29);

    // Something that could not be sent shows on /problems with its reason.
    net.drop_file("harbin-gov", "prov-gov", "空白.txt", b"");
    let problems = wait_until("the empty file on /problems", || {
        let p = futures_now(b.clone().get("/problems")).text();
        p.contains("空白.txt").then_some(p)
    })
    .await;
    assert!(problems.contains("empty"), "{problems}");

    // With the hub gone, the page says so in plain words.
    hub.stop().await;
    harbin.wait_error().await;
    let status = b.get("/status").await.text();
    assert!(status.contains("未连接"), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervision_office_sees_the_province_overdue_report_and_csv_and_a_node_unit_does_not() {
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
    let console = "[console]\nlisten = \"127.0.0.1:0\"";
    for (id, user) in [("harbin-gov", "li.si"), ("prov-supervision", "zhao")] {
        let accounts = net.root(id).join("state").join("accounts.json");
        Accounts::edit(&accounts, |a| {
            a.add_user(user, "督查员", UserRole::Admin, PASSWORD, 0)
        })
        .unwrap();
    }
    let _prov = net.start_agent("prov-gov", hub.addr);
    let harbin = RunningAgent::start(net.agent_config_with("harbin-gov", hub.addr, console));
    let sup = RunningAgent::start(net.agent_config_with("prov-supervision", hub.addr, console));
    hub.wait_ready(&["prov-gov", "harbin-gov", "prov-supervision"])
        .await;
    net.sidecar(
        "prov-gov",
        "harbin-gov",
        "督办通知.txt",
        "urgency = \"urgent\"\ndoc_number = \"黑政发〔2026〕99号\"\ntitle = \"关于汛期值班的通知\"\n",
    );
    net.drop_file("prov-gov", "harbin-gov", "督办通知.txt", b"please sign");
    let docs = wait_inbox(&net.root("harbin-gov"), "prov-gov", 1).await;
    let doc = docs[0].file_name().unwrap().to_string_lossy().into_owned();
    // A report asked within the hour, signed for at once and never given.
    net.sidecar(
        "prov-gov",
        "harbin-gov",
        "报送通知.txt",
        "title = \"关于报送值班表的通知\"\nreply = \"report\"\nreply_by = \"1h\"\n",
    );
    net.drop_file("prov-gov", "harbin-gov", "报送通知.txt", b"please report");
    let docs = wait_inbox(&net.root("harbin-gov"), "prov-gov", 2).await;
    let asked = docs
        .iter()
        .map(|d| d.file_name().unwrap().to_string_lossy().into_owned())
        .find(|d| *d != doc)
        .unwrap();
    gongwen_tests::ask_agent(
        &net.root("harbin-gov"),
        &gongwen_agent::front::control::Request::Ack {
            doc: asked.parse().unwrap(),
            by: "李四".into(),
        },
    )
    .await
    .unwrap();
    wait_until("the report's question signed for at the hub", || {
        let v = futures_now(gongwen_tests::ask_hub(
            &hub.data_dir,
            &gongwen_hub::ops::control::Request::Status {
                doc: asked.parse().unwrap(),
            },
        ));
        (v["recipients"][0]["state"] == "acknowledged").then_some(())
    })
    .await;
    // Five hours on by the hub's clock: an urgent document (4 h) is overdue.
    clock.advance(std::time::Duration::from_secs(5 * 3600));
    hub.handle.escalate_now().await.unwrap();

    // A node unit's console has no supervision pages.
    let mut clerk = browser(&harbin);
    clerk.log_in("li.si", PASSWORD).await;
    assert_eq!(clerk.get("/supervision").await.status, 403);
    assert_eq!(clerk.get("/supervision/overdue.csv").await.status, 403);
    assert!(!clerk.get("/").await.text().contains("/supervision"));

    let mut b = browser(&sup);
    b.log_in("zhao", PASSWORD).await;
    let page = b.get("/supervision").await;
    assert_eq!(page.status, 200, "{}", page.text());
    let html = page.text();
    assert!(
        html.contains("关于汛期值班的通知") && html.contains("harbin-gov"),
        "{html}"
    );
    assert!(html.contains("<svg") && html.contains("<rect"), "no chart");
    assert!(!html.contains("<script"));
    let filtered = b.get("/supervision?unit=daqing-gov").await.text();
    assert!(
        filtered.contains("没有超期未签收或未答复的公文"),
        "{filtered}"
    );
    assert!(
        html.contains("关于报送值班表的通知") && html.contains("未答复"),
        "the missing answer is not listed: {html}"
    );
    let urgent = b.get("/supervision?urgency=urgent").await.text();
    assert!(urgent.contains("关于汛期值班的通知"));
    let normal = b.get("/supervision?urgency=normal").await.text();
    assert!(!normal.contains("<td>黑政发〔2026〕99号</td>"), "{normal}");

    let csv = b.get("/supervision/overdue.csv").await;
    assert!(
        csv.header("content-disposition")
            .unwrap()
            .starts_with("attachment")
    );
    assert!(csv.body.starts_with("\u{feff}".as_bytes()), "no BOM");
    let text = String::from_utf8(csv.body.clone()).unwrap();
    assert!(text.contains("收文单位,事项,发文单位,文号"), "{text}");
    assert!(
        text.contains("harbin-gov,未签收,prov-gov,黑政发〔2026〕99号,关于汛期值班的通知,加急"),
        "{text}"
    );
    assert!(
        text.contains("harbin-gov,未答复,prov-gov,,关于报送值班表的通知,平件"),
        "{text}"
    );
    // harbin-gov: two received, one signed for on time, one overdue; one
    // answer asked, missing.
    let report = String::from_utf8(b.get("/supervision/report.csv").await.body).unwrap();
    let row = report
        .lines()
        .find(|l| l.starts_with("harbin-gov,"))
        .unwrap_or_else(|| panic!("{report}"));
    assert!(row.starts_with("harbin-gov,2,1,0,0,1,1,"), "{report}");
    assert!(row.ends_with(",1,0,0,1"), "{report}");

    // Looked up by 文号, then by id: the 签收情况 table.
    let found = b
        .get(&format!(
            "/supervision?doc={}",
            gongwen_tests::web::form_encode("99号")
        ))
        .await
        .text();
    assert!(found.contains(&doc), "{found}");
    let one = b.get(&format!("/supervision?doc={doc}")).await.text();
    assert!(
        one.contains("签收情况") || one.contains("收文单位"),
        "{one}"
    );
    assert!(one.contains("已送达") || one.contains("delivered"), "{one}");
    let api = b.get("/api/v1/supervision/overdue").await;
    let v: serde_json::Value = serde_json::from_slice(&api.body).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{v}");
    assert!(
        rows.iter()
            .any(|r| r["recipient"] == "harbin-gov" && r["urgency"] == "urgent"),
        "{v}"
    );
    assert!(
        rows.iter()
            .any(|r| r["doc_id"] == asked.as_str() && r["missing"] == "answer"),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_login_page_or_a_stray_favicon_request_does_not_void_the_login_form() {
    // Found by the browser test: a browser's own request for /favicon.ico
    // was redirected to /login, which handed out a new token, and the form
    // already on screen was then refused.
    let u = units().await;
    let mut b = browser(&u.harbin);
    let form = b.get("/login").await;
    let csrf = form.csrf().unwrap();
    let icon = b.get("/favicon.ico").await;
    assert_eq!(icon.status, 204, "{:?}", icon.location());
    let again = b.get("/login").await;
    assert_eq!(
        again.csrf().unwrap(),
        csrf,
        "a second login page changed the token"
    );
    let done = b
        .post_form(
            "/login",
            &[
                ("username", "li.si"),
                ("password", PASSWORD),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_serves_https_with_the_units_certificate_and_its_cookies_are_secure() {
    let net = Net::new();
    net.issue("harbin-gov", Role::Node);
    let hub = net.start_hub().await;
    // A server certificate for the console on the unit's LAN (here, its
    // loopback address), as the unit's administrator would install it.
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let dir = net.path().join("console-tls");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("console.crt"), cert.cert.pem()).unwrap();
    std::fs::write(dir.join("console.key"), cert.signing_key.serialize_pem()).unwrap();
    let accounts = net.root("harbin-gov").join("state").join("accounts.json");
    Accounts::edit(&accounts, |a| {
        a.add_user("li.si", "李四", UserRole::Clerk, PASSWORD, 0)
    })
    .unwrap();
    let agent = RunningAgent::start(net.agent_config_with(
        "harbin-gov",
        hub.addr,
        "[console]\nlisten = \"127.0.0.1:0\"\ntls_cert = \"console-tls/console.crt\"\ntls_key = \"console-tls/console.key\"",
    ));
    let mut b = Browser::new_tls(agent.console.unwrap(), cert.cert.der());
    let form = b.get("/login").await;
    assert_eq!(form.status, 200);
    let csrf = form.csrf().unwrap();
    let done = b
        .post_form(
            "/login",
            &[
                ("username", "li.si"),
                ("password", PASSWORD),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.text());
    let cookie = done
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("gongwen_session="))
        .unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert_eq!(b.get("/").await.status, 200);
    // Plain HTTP to the HTTPS port gets no page (at most a TLS alert).
    let plain = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        let mut s = tokio::net::TcpStream::connect(agent.console.unwrap())
            .await
            .unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut s, b"GET /login HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut s, &mut buf).await;
        buf
    })
    .await
    .unwrap_or_default();
    assert!(
        !plain.starts_with(b"HTTP/"),
        "the HTTPS port answered plain HTTP"
    );
    // A key that does not go with the certificate stops the agent at start,
    // naming the key.
    let other = rcgen::KeyPair::generate().unwrap();
    std::fs::write(dir.join("console.key"), other.serialize_pem()).unwrap();
    agent.stop().await;
    let e = gongwen_agent::Agent::new(net.agent_config_with(
        "harbin-gov",
        hub.addr,
        "[console]\nlisten = \"127.0.0.1:0\"\ntls_cert = \"console-tls/console.crt\"\ntls_key = \"console-tls/console.key\"",
    ));
    let e = e.unwrap_err().to_string();
    assert!(e.contains("console.tls_key"), "{e}");
}

/// The newest document in `root`'s inbox from `sender`.
async fn newest_from(root: &std::path::Path, sender: &str, count: usize) -> std::path::PathBuf {
    let docs = wait_inbox(root, sender, count).await;
    docs.into_iter().max().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clerk_answers_and_forwards_in_the_console_and_the_asker_downloads_the_summary() {
    let u = units().await;
    let doc = send(
        &u,
        "报送通知.txt",
        "请报送本地区统计数据".as_bytes(),
        Some("title = \"关于报送统计数据的通知\"\nreply = \"report\"\nreply_by = \"5d\"\n"),
    )
    .await;
    let mut clerk = browser(&u.harbin);
    clerk.log_in("li.si", PASSWORD).await;
    let page = clerk.get(&format!("/inbox/{doc}")).await;
    let html = page.text();
    assert!(
        html.contains("要求答复") && html.contains("报送材料"),
        "{html}"
    );
    assert!(html.contains(&format!("action=\"/inbox/{doc}/reply\"")));
    // 转发 only once signed for: the answer below signs for it.
    assert!(!html.contains(&format!("action=\"/inbox/{doc}/forward\"")));
    let csrf = page.csrf().unwrap();
    let reply = format!("/inbox/{doc}/reply");

    // A report without files is refused on the page, nothing sent.
    let bare = clerk
        .post_multipart(
            &reply,
            &[("csrf", &csrf), ("note", "无"), ("by", "李四")],
            &[],
        )
        .await;
    assert_eq!(bare.status, 422);
    assert!(bare.text().contains("carries files"), "{}", bare.text());
    // Without the form's token nothing is read.
    let forged = clerk
        .post_multipart(
            &reply,
            &[("csrf", "0000"), ("by", "李四")],
            &[("files", "报表.csv", b"a,1\n")],
        )
        .await;
    assert_eq!(forged.status, 403);

    let sheet = b"\xe5\x9c\xb0\xe5\x8c\xba,\xe6\x95\xb0\xe9\x87\x8f\nharbin,42\n";
    let answered = clerk
        .post_multipart(
            &reply,
            &[
                ("csrf", &csrf),
                ("note", "按时报送"),
                ("cc", "daqing-gov"),
                ("by", "李四"),
            ],
            &[("files", "报表.csv", sheet)],
        )
        .await;
    assert_eq!(answered.status, 303, "{}", answered.text());
    // The form sent twice: the second answer is refused, whether the first
    // is still on its way or already taken (a correction names it).
    let again = clerk
        .post_multipart(
            &reply,
            &[("csrf", &csrf), ("by", "李四")],
            &[("files", "报表.csv", b"x")],
        )
        .await;
    assert_eq!(again.status, 422, "{}", again.text());
    assert!(
        again.text().contains("still being sent") || again.text().contains("answered already"),
        "{}",
        again.text()
    );
    let answer_page = answered.location().unwrap();
    assert!(answer_page.starts_with("/sent/"), "{answer_page}");
    let answer = newest_from(&u.net.root("prov-gov"), "harbin-gov", 1).await;
    assert_eq!(std::fs::read(answer.join("报表.csv")).unwrap(), sheet);
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(answer.join("metadata.json")).unwrap()).unwrap();
    assert_eq!(meta["in_reply_to"]["doc_id"], doc.to_string());
    // A copy (抄送) went to daqing-gov.
    let copy = newest_from(&u.net.root("daqing-gov"), "harbin-gov", 1).await;
    assert_eq!(std::fs::read(copy.join("报表.csv")).unwrap(), sheet);
    // Answering signed for it, in the answerer's name.
    wait_until("the question signed for", || {
        (state_of(&u.harbin, doc) == ReceivedState::Acknowledged).then_some(())
    })
    .await;
    // Once the hub took it, the page offers a correction of it.
    let answer_id = answer.file_name().unwrap().to_string_lossy().into_owned();
    wait_until("the answer noted as ours", || {
        u.harbin.parts.store().replied(doc).unwrap().map(|_| ())
    })
    .await;
    let page = clerk.get(&format!("/inbox/{doc}")).await.text();
    assert!(
        page.contains("更正答复")
            && page.contains(&format!("name=\"supersedes\" value=\"{answer_id}\"")),
        "{page}"
    );

    // The asker's page: 签收情况 and the 汇总, with both files.
    let mut asker = browser(&u.prov);
    asker.log_in("wang", PASSWORD).await;
    let sent = wait_until("the answer in the asker's 汇总", || {
        let p = futures_now(asker.clone().get(&format!("/sent/{doc}")));
        p.text().contains("报表.csv").then_some(p)
    })
    .await;
    let html = sent.text();
    assert!(
        html.contains("答复汇总") && html.contains("已报送 1 / 共 1"),
        "{html}"
    );
    assert!(html.contains("按时报送") && html.contains("按时"), "{html}");
    let encoded = |name: &str| gongwen_tests::web::form_encode(name).replace('+', "%20");
    let csv = asker
        .get(&format!("/sent/{doc}/{}", encoded("汇总表.csv")))
        .await;
    assert_eq!(csv.status, 200, "{}", csv.text());
    assert!(
        csv.header("content-disposition")
            .unwrap()
            .starts_with("attachment")
    );
    let text = csv.text();
    assert!(text.starts_with('\u{feff}'), "no BOM");
    assert!(
        text.contains("\"harbin-gov\"") && text.contains("\"报表.csv\""),
        "{text}"
    );
    let xlsx = asker
        .get(&format!("/sent/{doc}/{}", encoded("汇总表.xlsx")))
        .await;
    assert_eq!(xlsx.status, 200);
    assert_eq!(&xlsx.body[..2], b"PK", "not a workbook");
    // Only for the sender, only for a question; a stranger logs in first.
    let other = asker
        .get(&format!("/sent/{answer_id}/{}", encoded("汇总表.csv")))
        .await;
    assert_eq!(other.status, 404);
    let stranger = browser(&u.prov)
        .get(&format!("/sent/{doc}/{}", encoded("汇总表.csv")))
        .await;
    // Sent to log in, like every page a browser asks for without a session.
    assert_eq!(stranger.status, 303);
    assert_eq!(stranger.location().as_deref(), Some("/login"));

    // 转发: harbin-gov, having signed for it by answering, passes it on to
    // daqing-gov.
    let signed = clerk.get(&format!("/inbox/{doc}")).await.text();
    assert!(
        signed.contains(&format!("action=\"/inbox/{doc}/forward\"")),
        "{signed}"
    );
    let forward = format!("/inbox/{doc}/forward");
    let nobody = clerk
        .post_form(&forward, &[("csrf", &csrf), ("to_more", "nobody-gov")])
        .await;
    assert_eq!(nobody.status, 422);
    assert!(nobody.text().contains("nobody-gov"), "{}", nobody.text());
    let no_token = clerk
        .post_form(&forward, &[("csrf", "0000"), ("to", "daqing-gov")])
        .await;
    assert_eq!(no_token.status, 403);
    let forwarded = clerk
        .post_form(
            &forward,
            &[
                ("csrf", &csrf),
                ("to", "daqing-gov"),
                ("note", "请认真贯彻落实"),
                ("by", "李四"),
            ],
        )
        .await;
    assert_eq!(forwarded.status, 303, "{}", forwarded.text());
    assert!(forwarded.location().unwrap().starts_with("/sent/"));
    let copy = newest_from(&u.net.root("daqing-gov"), "harbin-gov", 2).await;
    assert_eq!(
        std::fs::read(copy.join("报送通知.txt")).unwrap(),
        "请报送本地区统计数据".as_bytes()
    );
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(copy.join("metadata.json")).unwrap()).unwrap();
    assert_eq!(meta["forwarded_from"]["sender"], "prov-gov");
    assert_eq!(meta["forwarded_from"]["doc_id"], doc.to_string());
    assert_eq!(meta["note"], "请认真贯彻落实");
}
