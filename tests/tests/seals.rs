//! 验章 (issue 26): `gongwen-agent seal verify` over a corpus of OFDs that
//! OpenSSL and a few lines of Python made (tests/fixtures/make_ofd_corpus.py)
//! — a valid seal, and each way one can be wrong — each giving the verdict
//! and the reason GB/T 38540 asks for; no roots configured gives 无法验证;
//! a page nested 100,000 deep is refused as unreadable, not followed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use gongwen_tests::bin;
use gongwen_tests::tools::ofd_corpus;

fn verify(file: &Path, extra: &[&std::ffi::OsStr]) -> (bool, serde_json::Value) {
    let out = Command::new(bin("gongwen-agent"))
        .args(["seal", "verify", "--json"])
        .arg(file)
        .args(extra)
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "seal verify {} printed no JSON ({e}): {} {}",
            file.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), json)
}

#[test]
fn every_seal_of_the_corpus_gets_its_verdict_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let Some(corpus) = ofd_corpus(dir.path()) else {
        return;
    };
    let roots = dir.path().join("root.pem");
    let crls = dir.path().join("crl.pem");
    let trust: Vec<&std::ffi::OsStr> = vec![
        "--roots".as_ref(),
        roots.as_os_str(),
        "--crls".as_ref(),
        crls.as_os_str(),
    ];
    let corpus = corpus.as_object().unwrap();
    assert!(
        corpus.len() >= 12,
        "the corpus lists every case: {corpus:?}"
    );
    for (name, expected) in corpus {
        let (ok, found) = verify(&dir.path().join(name), &trust);
        let seals = found["seals"].as_array().unwrap();
        match expected {
            serde_json::Value::String(s) if s == "broken" => {
                let problems = found["problems"].as_array().unwrap();
                assert!(!problems.is_empty(), "{name} is unreadable: {found}");
                assert!(!ok, "{name}: exit 1");
            }
            serde_json::Value::Array(want) => {
                assert_eq!(seals.len(), want.len(), "{name}: {found}");
                for (got, want) in seals.iter().zip(want) {
                    assert_eq!(got["result"], want["result"], "{name}: {found}");
                    let reason = want["reason"].as_str().unwrap();
                    assert!(
                        got["reason"].as_str().unwrap().contains(reason),
                        "{name}: the reason names {reason:?}: {found}"
                    );
                }
                assert!(
                    found["problems"].as_array().unwrap().is_empty(),
                    "{name}: its structure is sound: {found}"
                );
                // Exit 0 only with seals, all valid.
                let all_valid = !want.is_empty() && want.iter().all(|w| w["result"] == "valid");
                assert_eq!(ok, all_valid, "{name}: exit status");
            }
            other => panic!("corpus.json: {name}: {other}"),
        }
    }
    let (_, sealed) = verify(&dir.path().join("sealed.ofd"), &trust);
    let seal = &sealed["seals"][0];
    assert_eq!(seal["seal_name"], "黑龙江省人民政府");
    assert_eq!(seal["signer"], "王一");
    assert_eq!(sealed["pages"], 2);
}

#[test]
fn without_roots_a_sound_seal_cannot_be_verified_and_agent_toml_names_the_roots() {
    let dir = tempfile::tempdir().unwrap();
    if ofd_corpus(dir.path()).is_none() {
        return;
    }
    let sealed = dir.path().join("sealed.ofd");
    let (ok, found) = verify(&sealed, &[]);
    assert!(!ok);
    assert_eq!(found["seals"][0]["result"], "unverifiable", "{found}");
    assert!(
        found["seals"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("[seals] roots"),
        "{found}"
    );
    // A tampered file is invalid whatever the roots: what it proves does
    // not depend on whom we trust.
    let (_, tampered) = verify(&dir.path().join("tampered.ofd"), &[]);
    assert_eq!(tampered["seals"][0]["result"], "invalid", "{tampered}");

    // The roots from agent.toml's [seals], relative to the file.
    let net = gongwen_tests::Net::new();
    std::fs::copy(
        dir.path().join("root.pem"),
        net.path().join("seal-root.pem"),
    )
    .unwrap();
    let config = net
        .agent_config_with(
            "harbin-gov",
            "127.0.0.1:9".parse().unwrap(),
            "[seals]\nroots = [\"seal-root.pem\"]\n",
        )
        .path;
    let (ok, found) = verify(&sealed, &["--config".as_ref(), config.as_os_str()]);
    assert!(ok, "{found}");
    assert_eq!(found["seals"][0]["result"], "valid");

    // `check` names a roots file that cannot be read.
    let broken = net
        .agent_config_with(
            "daqing-gov",
            "127.0.0.1:9".parse().unwrap(),
            "[seals]\nroots = [\"missing-seal-root.pem\"]\n",
        )
        .path;
    let checked = Command::new(bin("gongwen-agent"))
        .args(["check", "--config"])
        .arg(&broken)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&checked.stdout);
    assert!(!checked.status.success());
    assert!(said.contains("missing-seal-root.pem"), "{said}");

    // A roots file that is not there is an error naming it, not a
    // silent 无法验证.
    let out = Command::new(bin("gongwen-agent"))
        .args(["seal", "verify"])
        .arg(&sealed)
        .args(["--roots", "/nonexistent/seal-root.pem"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/seal-root.pem"));
}

/// Two units: prov-gov sends, harbin-gov receives with the seal roots and
/// CRL configured; both with consoles.
struct Pair {
    net: gongwen_tests::Net,
    _hub: gongwen_tests::RunningHub,
    prov: gongwen_tests::RunningAgent,
    harbin: gongwen_tests::RunningAgent,
    corpus: tempfile::TempDir,
}

async fn pair() -> Option<Pair> {
    use gongwen_agent::unit::accounts::{Accounts, UserRole};
    let corpus = tempfile::tempdir().unwrap();
    ofd_corpus(corpus.path())?;
    let net = gongwen_tests::Net::new();
    for (id, name) in gongwen_tests::web::UNIT_NAMES {
        net.issue_named(id, gongwen_common::pki::Role::Node, name);
    }
    let hub = net.start_hub().await;
    let console = "[console]\nlisten = \"127.0.0.1:0\"\n";
    let seals = format!(
        "[seals]\nroots = [{:?}]\ncrls = [{:?}]\n",
        corpus.path().join("root.pem").display().to_string(),
        corpus.path().join("crl.pem").display().to_string()
    );
    let mut agents = Vec::new();
    for (id, clerk, name, extra) in [
        ("prov-gov", "wang", "王五", String::new()),
        ("harbin-gov", "li.si", "李四", seals),
    ] {
        let accounts = net.root(id).join("state").join("accounts.json");
        Accounts::edit(&accounts, |a| {
            a.add_user(
                clerk,
                name,
                UserRole::Clerk,
                gongwen_tests::web::PASSWORD,
                0,
            )
        })
        .unwrap();
        agents.push(gongwen_tests::RunningAgent::start(net.agent_config_with(
            id,
            hub.addr,
            &format!("{console}{extra}"),
        )));
    }
    hub.wait_ready(&["prov-gov", "harbin-gov"]).await;
    let harbin = agents.pop().unwrap();
    let prov = agents.pop().unwrap();
    Some(Pair {
        net,
        _hub: hub,
        prov,
        harbin,
        corpus,
    })
}

/// Send the corpus files `files` (the first the 正文) from prov-gov to
/// harbin-gov as one document; its folder in harbin-gov's inbox.
async fn send(p: &Pair, name: &str, files: &[&str]) -> std::path::PathBuf {
    let staging = p.net.root("prov-gov").join(format!("staging-{name}"));
    std::fs::create_dir_all(&staging).unwrap();
    for (i, f) in files.iter().enumerate() {
        let shown = if i == 0 {
            format!("正文.{}", f.rsplit_once('.').unwrap().1)
        } else {
            format!("附件{i}-{f}")
        };
        std::fs::copy(p.corpus.path().join(f), staging.join(shown)).unwrap();
    }
    p.net.sidecar(
        "prov-gov",
        "harbin-gov",
        name,
        "title = \"关于做好冬季安全生产工作的通知\"\ndoc_type = \"通知\"\nsigner = \"王一\"\n",
    );
    let before = gongwen_tests::inbox_docs(&p.net.root("harbin-gov"), "prov-gov").len();
    std::fs::rename(
        &staging,
        p.net
            .root("prov-gov")
            .join("outbox")
            .join("harbin-gov")
            .join(name),
    )
    .unwrap();
    let docs = gongwen_tests::wait_inbox(&p.net.root("harbin-gov"), "prov-gov", before + 1).await;
    // The newest: document ids begin with the time they were made.
    let doc = docs.into_iter().max().unwrap();
    // The folder is in the inbox before the store records it (and before
    // the receipt goes): wait for the record, which the console reads.
    let id = gongwen_common::DocId::parse(&doc.file_name().unwrap().to_string_lossy()).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !p
        .harbin
        .parts
        .store()
        .run(move |s| Ok(s.received(id)?.is_some()))
        .await
        .unwrap()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "harbin-gov did not record {id} within 60 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    doc
}

fn metadata(doc: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(doc.join("metadata.json")).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_received_ofd_is_checked_on_arrival_and_the_clerks_verdict_travels_in_the_receipt() {
    let Some(p) = pair().await else {
        return;
    };
    // 正文 sealed and valid; an attachment changed after sealing; one
    // that cannot be read at all (a page nested 100,000 deep).
    // And a photo (a raster image), which the page shows as the agent redrew it.
    image::RgbImage::from_pixel(600, 200, image::Rgb([200, 0, 0]))
        .save(p.corpus.path().join("photo.png"))
        .unwrap();
    let doc = send(
        &p,
        "冬季安全",
        &["sealed.ofd", "tampered.ofd", "deep.ofd", "photo.png"],
    )
    .await;
    let m = metadata(&doc);
    let seals = m["seals"].as_array().unwrap_or_else(|| panic!("{m:#}"));
    assert_eq!(seals.len(), 2, "{m:#}");
    assert_eq!(seals[0]["file"], "正文.ofd");
    assert_eq!(seals[0]["result"], "valid", "{m:#}");
    assert_eq!(seals[0]["seal_name"], "黑龙江省人民政府");
    assert_eq!(seals[1]["file"], "附件1-tampered.ofd");
    assert_eq!(seals[1]["result"], "invalid");
    assert!(
        seals[1]["reason"]
            .as_str()
            .unwrap()
            .contains("在盖章后被改动")
    );
    let problems = &m["ofd_problems"];
    assert_eq!(problems[0]["file"], "附件2-deep.ofd", "{m:#}");
    assert!(
        problems[0]["problems"][0]
            .as_str()
            .unwrap()
            .contains("嵌套")
    );

    // The document page says so, in Chinese.
    let id = doc.file_name().unwrap().to_string_lossy().into_owned();
    let mut b = gongwen_tests::web::Browser::new(p.harbin.console.unwrap());
    b.log_in("li.si", gongwen_tests::web::PASSWORD).await;
    let page = b.get(&format!("/inbox/{id}")).await.text();
    for want in [
        "验章",
        "印章有效",
        "签章人：王一",
        "印章无效",
        "在盖章后被改动",
        "正文无法解析",
        "嵌套",
    ] {
        assert!(page.contains(want), "{want} missing: {page}");
    }

    // The photo stands on the page, redrawn by the agent as a PNG.
    let photo = gongwen_tests::web::form_encode("附件3-photo.png").replace('+', "%20");
    let src = format!("/inbox/{id}/read/{photo}/1");
    assert!(
        page.contains(&format!("<img class=\"inline\" src=\"{src}\"")),
        "{page}"
    );
    let drawn = b.get(&src).await;
    assert_eq!(drawn.status, 200, "{}", drawn.text());
    assert_eq!(drawn.header("content-type").as_deref(), Some("image/png"));
    let img = image::load_from_memory(&drawn.body).unwrap();
    assert_eq!((img.width(), img.height()), (600, 200));

    // The inbox search finds it by words only its pages hold.
    let found = b
        .get("/inbox?q=%E5%80%BC%E7%8F%AD%E5%80%BC%E5%AE%88")
        .await
        .text();
    assert!(
        found.contains(&id),
        "值班值守 (page 2's text) finds it: {found}"
    );
    let none = b.get("/inbox?q=%E9%98%B2%E6%B1%9B").await.text();
    assert!(!none.contains(&id), "防汛 is not in it: {none}");

    // 签收: the receipt carries what the clerk saw; the sender's status shows it.
    let doc_id = gongwen_common::DocId::parse(&id).unwrap();
    gongwen_tests::ask_agent(
        &p.net.root("harbin-gov"),
        &gongwen_agent::front::control::Request::Ack {
            doc: doc_id,
            by: "李四".into(),
        },
    )
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let seen = loop {
        let v = gongwen_tests::ask_agent(
            &p.net.root("prov-gov"),
            &gongwen_agent::front::control::Request::Status { doc: Some(doc_id) },
        )
        .await
        .unwrap();
        let st: gongwen_agent::front::control::DocStatus = serde_json::from_value(v).unwrap();
        if let Some(r) = st
            .recipients
            .into_iter()
            .find(|r| r.recipient == "harbin-gov" && r.acknowledged_by.is_some())
        {
            break r.seals;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the sender did not get the 签收 receipt within 60 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].outcome, gongwen_common::receipt::SealOutcome::Valid);
    assert_eq!(
        seen[1].outcome,
        gongwen_common::receipt::SealOutcome::Invalid
    );
    let mut sender = gongwen_tests::web::Browser::new(p.prov.console.unwrap());
    sender.log_in("wang", gongwen_tests::web::PASSWORD).await;
    let sent = sender.get(&format!("/sent/{id}")).await.text();
    assert!(
        sent.contains("印章有效") && sent.contains("印章无效"),
        "{sent}"
    );

    // The evidence re-checks each seal's SM2 signature and SM3 with openssl.
    let out = tempfile::tempdir().unwrap();
    gongwen_tests::ask_agent(
        &p.net.root("harbin-gov"),
        &gongwen_agent::front::control::Request::Evidence {
            doc: doc_id,
            out: out.path().to_owned(),
        },
    )
    .await
    .unwrap();
    let run = Command::new("sh")
        .arg("verify.sh")
        .current_dir(out.path())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "verify.sh: {said}");
    assert!(
        said.contains("seal-1: SM2 signature over TBS_Sign"),
        "{said}"
    );
    assert!(said.contains("dataHash is SM3 of Signature.xml"), "{said}");
    // The manifest states the GB/T 9704 elements the header signed.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        manifest["elements"]["signers"],
        serde_json::json!(["王一"]),
        "{manifest:#}"
    );
    let verdicts: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("seals/seals.json")).unwrap())
            .unwrap();
    assert_eq!(verdicts[0]["result"], "valid", "{verdicts}");
    // A forged signature in the bundle is caught by openssl, not by us.
    let tbs = out.path().join("seals/seal-1.tbs.der");
    let mut bytes = std::fs::read(&tbs).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&tbs, bytes).unwrap();
    let run = Command::new("sh")
        .arg("verify.sh")
        .current_dir(out.path())
        .output()
        .unwrap();
    assert!(!run.status.success());
    assert!(
        String::from_utf8_lossy(&run.stdout).contains("FAIL  seal         seal-1: SM2 signature")
    );
}

/// Pixels of a PNG that are red (a seal's ink, the 发文机关标志) and that
/// are not white (anything drawn).
fn red_and_inked(png: &[u8]) -> (usize, usize) {
    let img = image::load_from_memory(png).unwrap().to_rgba8();
    let red = img
        .pixels()
        .filter(|p| p[0] > 170 && p[1] < 80 && p[2] < 80)
        .count();
    let inked = img
        .pixels()
        .filter(|p| p[0] < 250 || p[1] < 250 || p[2] < 250)
        .count();
    (red, inked)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clerk_reads_a_sealed_ofd_in_the_browser_signs_for_it_and_the_sender_sees_the_seal() {
    if !gongwen_tests::browser::available() || !gongwen_tests::tools::have_pdftotext() {
        return;
    }
    let Some(p) = pair().await else {
        return;
    };
    // The page text, as our reader extracts it for search, is the text
    // the corpus wrote (in Python).
    let found = gongwen_ofd::examine(
        &p.corpus.path().join("sealed.ofd"),
        &gongwen_ofd::SealTrust::none(),
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    for want in [
        "黑龙江省人民政府文件",
        "关于做好冬季安全生产工作的通知",
        "2026年12月1日",
    ] {
        assert!(
            found.structure.text.contains(want),
            "{want}: {}",
            found.structure.text
        );
    }

    let doc = send(&p, "冬季通知", &["sealed.ofd", "deep.ofd"]).await;
    let id = doc.file_name().unwrap().to_string_lossy().into_owned();
    let harbin = gongwen_tests::web::base(&p.harbin);
    let mut chrome = gongwen_tests::browser::Chrome::start().await;
    chrome
        .log_in(&harbin, "li.si", gongwen_tests::web::PASSWORD)
        .await;
    let page = chrome
        .wait_for_text(&format!("{harbin}/inbox/{id}"), "验章")
        .await;
    assert!(page.contains("印章有效"), "{page}");
    assert!(page.contains("签章人：王一"), "{page}");
    assert!(page.contains("正文无法解析"), "{page}");
    let green = chrome.css_value("li.seal-valid", "color").await;
    assert!(green.contains("21, 87, 36"), "印章有效 is green: {green}");

    // 在线阅读: the pages, drawn by the agent, with the seal on page 2.
    chrome.click("a.read").await;
    chrome.find("img.page").await;
    chrome.screenshot("ofd-reading").await;
    let source = chrome.source().await;
    assert_eq!(source.matches("<img class=\"page\"").count(), 2, "{source}");
    // The verdict stands above the pages (a seal's picture proves nothing).
    assert!(chrome.text().await.contains("印章有效"), "{source}");
    let mut b = gongwen_tests::web::Browser::new(p.harbin.console.unwrap());
    b.log_in("li.si", gongwen_tests::web::PASSWORD).await;
    let name = gongwen_tests::web::form_encode("正文.ofd").replace('+', "%20");
    let first = b.get(&format!("/inbox/{id}/read/{name}/1")).await;
    assert_eq!(first.status, 200, "{}", first.text());
    let (red1, inked1) = red_and_inked(&first.body);
    assert!(inked1 > 5_000, "page 1 is blank ({inked1} pixels drawn)");
    assert!(red1 > 500, "page 1 lacks the red 发文机关标志 ({red1})");
    let second = b.get(&format!("/inbox/{id}/read/{name}/2")).await;
    let (red2, _) = red_and_inked(&second.body);
    // The seal's ring (40 mm across) is far more red than page 2's rule.
    assert!(
        red2 > red1,
        "no seal on page 2 ({red2} red pixels, page 1 {red1})"
    );
    // The unreadable attachment says why; the agent serves on.
    let deep = gongwen_tests::web::form_encode("附件1-deep.ofd").replace('+', "%20");
    let said = b.get(&format!("/inbox/{id}/read/{deep}")).await;
    assert!(said.text().contains("正文无法解析"), "{}", said.text());
    assert_eq!(b.get("/").await.status, 200, "the console stopped serving");

    // A PDF bomb (an image that inflates to 900 MB) from another unit:
    // poppler draws it, or fails, within its limits, and the console
    // answers another request while that render runs (or once it is done).
    let bomb = send(&p, "炸弹", &["bomb.pdf"]).await;
    let bomb = bomb.file_name().unwrap().to_string_lossy().into_owned();
    let pdf = gongwen_tests::web::form_encode("正文.pdf").replace('+', "%20");
    let (mut b1, mut b2) = (b.clone(), b.clone());
    let path = format!("/inbox/{bomb}/read/{pdf}/1");
    let (drawn, home) = tokio::join!(b1.get(&path), async {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        b2.get("/").await
    });
    assert!(
        drawn.status == 200 || drawn.status == 422,
        "the bomb: {} {}",
        drawn.status,
        drawn.text()
    );
    assert!(drawn.body.len() < 32 << 20);
    assert_eq!(
        home.status, 200,
        "the console did not serve while poppler ran"
    );

    // 签收 in the browser; the sender's page shows what the clerk saw.
    chrome.goto(&format!("{harbin}/inbox/{id}")).await;
    chrome.click("form.ack input[name=confirm]").await;
    chrome
        .click_and_land("form.ack button[type=submit]", "done=ack")
        .await;
    let prov = gongwen_tests::web::base(&p.prov);
    chrome
        .log_in(&prov, "wang", gongwen_tests::web::PASSWORD)
        .await;
    let table = chrome
        .wait_for_text(&format!("{prov}/sent/{id}"), "已签收 1 / 共 1")
        .await;
    assert!(table.contains("印章有效"), "{table}");
    chrome.screenshot("ofd-sender-sees-seal").await;
    chrome.quit().await;
}
