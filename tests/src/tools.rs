//! The tools beyond Rust some tests need (Chromium, PostgreSQL, Python
//! readers, openssl), and what happens when one is missing: under
//! `CI=true` the test fails, naming the Debian package; elsewhere it is
//! skipped — visibly: it says so, and `scripts/test.sh` counts and names
//! the skipped tests at the end (nextest and cargo test would count it as
//! passed).

use std::io::Write;

/// Where skipped tests are recorded: `$GONGWEN_SKIPPED`, which
/// `scripts/test.sh` sets, or `target/skipped-tests.txt`.
fn skip_log() -> std::path::PathBuf {
    std::env::var_os("GONGWEN_SKIPPED")
        .map(Into::into)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/skipped-tests.txt")
        })
}

/// Whether `what` (from the Debian `package`) is here: `present`. When it
/// is not, fail under `CI=true`, and otherwise record the skip and say so.
pub fn require(what: &str, package: &str, present: bool) -> bool {
    if present {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI must run this test: {what} is missing (install the Debian package {package})"
    );
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    eprintln!("SKIPPED {test}: {what} is missing (install the Debian package {package})");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(skip_log())
    {
        let _ = writeln!(f, "{test}\t{package}");
    }
    false
}

/// Whether `openssl` (with SM2, when `sm2`: OpenSSL 3) is here to check
/// our signatures, digests and bundles against; through [`require`], so a
/// missing one fails the test under `CI=true`.
pub fn have_openssl(sm2: bool) -> bool {
    let listed = std::process::Command::new("openssl")
        .args(["list", "-public-key-algorithms"])
        .output();
    let present = listed.is_ok_and(|o| {
        o.status.success() && (!sm2 || String::from_utf8_lossy(&o.stdout).contains("SM2"))
    });
    let what = if sm2 { "OpenSSL 3 with SM2" } else { "openssl" };
    require(what, "openssl", present)
}

/// Whether `python3` can import `module`.
pub fn python_has(module: &str) -> bool {
    std::process::Command::new("/usr/bin/python3")
        .args(["-c", &format!("import {module}")])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether poppler's `pdftotext` is here to read what the browser printed
/// (and the CJK fonts that put Chinese in the PDF at all).
pub fn have_pdftotext() -> bool {
    let present = std::path::Path::new("/usr/bin/pdftotext").exists()
        && std::path::Path::new("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc").exists();
    require(
        "pdftotext and CJK fonts",
        "poppler-utils fonts-noto-cjk",
        present,
    )
}

/// The OFD test corpus (tests/fixtures/make_ofd_corpus.py): OFDs and seals
/// made by OpenSSL and Python's standard library, not by gongwen, written
/// into `out`; `None` (or a failure under `CI=true`) without OpenSSL 3.
pub fn ofd_corpus(out: &std::path::Path) -> Option<serde_json::Value> {
    if !have_openssl(true) {
        return None;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/make_ofd_corpus.py");
    let made = std::process::Command::new("/usr/bin/python3")
        .arg(script)
        .arg(out)
        .output()
        .expect("python3 runs");
    assert!(
        made.status.success(),
        "make_ofd_corpus.py failed: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let listed = std::fs::read(out.join("corpus.json")).expect("corpus.json written");
    Some(serde_json::from_slice(&listed).expect("corpus.json is JSON"))
}
