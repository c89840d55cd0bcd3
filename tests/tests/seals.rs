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
    assert!(corpus.len() >= 12, "the corpus lists every case: {corpus:?}");
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
    std::fs::copy(dir.path().join("root.pem"), net.path().join("seal-root.pem")).unwrap();
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
