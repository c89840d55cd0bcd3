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

/// The distinct byte values of a PNG's image data (after inflating its
/// IDAT chunks): a blank page has a handful, a page with text many.
fn png_levels(png: &[u8]) -> usize {
    use std::io::Read;
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let mut at = 8;
    let mut idat = Vec::new();
    while at + 8 <= png.len() {
        let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
        let kind = &png[at + 4..at + 8];
        if kind == b"IDAT" {
            idat.extend_from_slice(&png[at + 8..at + 8 + len]);
        }
        at += 12 + len;
    }
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&idat[..])
        .read_to_end(&mut raw)
        .unwrap();
    let mut seen = [false; 256];
    for b in raw {
        seen[usize::from(b)] = true;
    }
    seen.iter().filter(|s| **s).count()
}

/// A minimal PDF, written by hand: one empty page `w` × `h` points.
fn hand_made_pdf(w: u32, h: u32) -> Vec<u8> {
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        format!("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {w} {h}] >>"),
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pdf_from_another_unit_is_read_in_the_console_and_a_broken_one_says_so() {
    if !gongwen_tests::browser::available() || !gongwen_tests::tools::have_pdftotext() {
        return;
    }
    let u = named_units().await;
    // The 正文: a page with Chinese text, printed to PDF by Chromium (a
    // tool this project did not write).
    let mut chrome = gongwen_tests::browser::Chrome::start().await;
    let prov = gongwen_tests::web::base(&u.prov);
    chrome.goto(&format!("{prov}/login")).await;
    let pdf = chrome.print_pdf().await;
    chrome.quit().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("正文.pdf"), &pdf).unwrap();
    let text = std::process::Command::new("pdftotext")
        .args(["正文.pdf", "-"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("登录"),
        "the fixture has no Chinese text"
    );
    let send = |name: &str, bytes: &[u8]| {
        u.net.sidecar(
            "prov-gov",
            "harbin-gov",
            name,
            &format!("title = \"{name}\"\ndoc_type = \"通知\"\n"),
        );
        u.net.drop_file("prov-gov", "harbin-gov", name, bytes);
    };
    send("正文.pdf", &pdf);
    send("坏.pdf", b"%PDF-1.4 this is not a PDF at all");
    send("巨大.pdf", &hand_made_pdf(200_000, 200_000));
    let docs = wait_inbox(&u.net.root("harbin-gov"), "prov-gov", 3).await;
    let find = |file: &str| {
        docs.iter()
            .find(|d| d.join(file).exists())
            .map(|d| d.file_name().unwrap().to_string_lossy().into_owned())
            .unwrap()
    };
    let mut b = Browser::new(u.harbin.console.unwrap());
    b.log_in("li.si", PASSWORD).await;

    // The document page offers 在线阅读; the reading page shows the pages.
    let good = find("正文.pdf");
    // The 收文 search finds it by the words of its pages (pdftotext's).
    let found = b.get("/inbox?q=%E7%99%BB%E5%BD%95").await.text();
    assert!(
        found.contains(&good),
        "登录 (the PDF's text) finds it: {found}"
    );
    let name = gongwen_tests::web::form_encode("正文.pdf").replace('+', "%20");
    let page = b.get(&format!("/inbox/{good}")).await.text();
    assert!(page.contains("在线阅读"), "{page}");
    let reading = b.get(&format!("/inbox/{good}/read/{name}")).await;
    assert_eq!(reading.status, 200, "{}", reading.text());
    assert!(
        reading.text().contains("<img class=\"page\""),
        "{}",
        reading.text()
    );
    let first = b.get(&format!("/inbox/{good}/read/{name}/1")).await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.header("content-type").as_deref(), Some("image/png"));
    assert!(
        png_levels(&first.body) > 8,
        "the rendered page is blank ({} levels)",
        png_levels(&first.body)
    );
    // Cached: the same image again, from state/render/.
    let again = b.get(&format!("/inbox/{good}/read/{name}/1")).await;
    assert_eq!(again.body, first.body);
    let cached = u.net.root("harbin-gov").join("state/render").join(&good);
    assert!(cached.is_dir(), "nothing cached under {}", cached.display());
    // Two views of a page not rendered (any more) at once: both get it.
    std::fs::remove_dir_all(&cached).unwrap();
    let (mut b1, mut b2) = (b.clone(), b.clone());
    let path = format!("/inbox/{good}/read/{name}/1");
    let (x, y) = tokio::join!(b1.get(&path), b2.get(&path));
    assert_eq!(
        (x.status, y.status),
        (200, 200),
        "{} {}",
        x.text(),
        y.text()
    );
    assert_eq!(x.body, first.body);
    assert_eq!(y.body, first.body);
    assert_eq!(
        b.get(&format!("/inbox/{good}/read/{name}/999"))
            .await
            .status,
        422
    );

    // A broken file says so, in Chinese; a huge page is scaled; the agent
    // serves on.
    let broken = find("坏.pdf");
    let bad_name = gongwen_tests::web::form_encode("坏.pdf").replace('+', "%20");
    let said = b.get(&format!("/inbox/{broken}/read/{bad_name}")).await;
    assert_eq!(said.status, 200);
    assert!(said.text().contains("正文无法显示"), "{}", said.text());
    let huge = find("巨大.pdf");
    let huge_name = gongwen_tests::web::form_encode("巨大.pdf").replace('+', "%20");
    let img = b.get(&format!("/inbox/{huge}/read/{huge_name}/1")).await;
    assert!(
        (img.status == 200 && img.body.len() < 32 << 20) || img.status == 422,
        "{}",
        img.status
    );
    assert_eq!(b.get("/").await.status, 200, "the console stopped serving");
    // Only PDFs are read: another file, or a name not in the document, is not.
    assert_eq!(
        b.get(&format!("/inbox/{good}/read/metadata.json"))
            .await
            .status,
        404
    );
}
