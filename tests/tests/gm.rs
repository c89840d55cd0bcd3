//! 国密 against an independent implementation: SM2 signatures and SM2
//! encryption interoperate with OpenSSL 3 in both directions (OpenSSL
//! signs, gongwen verifies, and the reverse; OpenSSL encrypts to a
//! gongwen key, gongwen decrypts, and the reverse), and SM3 digests agree
//! with `openssl dgst -sm3`. Skips, saying so, only where openssl is absent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use gongwen_common::gm::{self, DEFAULT_DISTID, Sm2Key};

fn openssl(dir: &Path, args: &[&str]) -> std::process::Output {
    let o = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "openssl {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// OpenSSL 3 with SM2, or a reason to skip.
fn have_openssl() -> bool {
    let ok = Command::new("openssl")
        .args(["list", "-public-key-algorithms"])
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("SM2"));
    if !ok {
        eprintln!("skipped: needs OpenSSL 3 with SM2 (Debian package openssl)");
    }
    ok
}

#[test]
fn sm2_signatures_interoperate_with_openssl_both_ways() {
    if !have_openssl() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let message = "关于做好冬季安全生产工作的通知".as_bytes();
    std::fs::write(d.join("msg"), message).unwrap();
    let distid = format!("distid:{DEFAULT_DISTID}");

    // gongwen signs; OpenSSL verifies, and refuses another id.
    let ours = Sm2Key::generate();
    std::fs::write(
        d.join("ours.pub.pem"),
        gm::public_pem(&ours.public()).unwrap(),
    )
    .unwrap();
    std::fs::write(
        d.join("ours.sig"),
        ours.sign(DEFAULT_DISTID, message).unwrap(),
    )
    .unwrap();
    let o = openssl(
        d,
        &[
            "dgst",
            "-sm3",
            "-verify",
            "ours.pub.pem",
            "-sigopt",
            &distid,
            "-signature",
            "ours.sig",
            "msg",
        ],
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("Verified OK"));
    let wrong = Command::new("openssl")
        .current_dir(d)
        .args([
            "dgst",
            "-sm3",
            "-verify",
            "ours.pub.pem",
            "-sigopt",
            "distid:someone-else",
            "-signature",
            "ours.sig",
            "msg",
        ])
        .output()
        .unwrap();
    assert!(!wrong.status.success(), "another id verified");

    // OpenSSL makes a key and signs; gongwen reads both and verifies.
    openssl(d, &["genpkey", "-algorithm", "SM2", "-out", "theirs.pem"]);
    openssl(
        d,
        &[
            "pkey",
            "-in",
            "theirs.pem",
            "-pubout",
            "-out",
            "theirs.pub.pem",
        ],
    );
    openssl(
        d,
        &[
            "dgst",
            "-sm3",
            "-sign",
            "theirs.pem",
            "-sigopt",
            &distid,
            "-out",
            "theirs.sig",
            "msg",
        ],
    );
    let public =
        gm::public_from_pem(&std::fs::read_to_string(d.join("theirs.pub.pem")).unwrap()).unwrap();
    let sig = std::fs::read(d.join("theirs.sig")).unwrap();
    gm::verify(&public, DEFAULT_DISTID, message, &sig).unwrap();
    assert!(gm::verify(&public, DEFAULT_DISTID, b"changed", &sig).is_err());
    // Its private key (PKCS#8, as OpenSSL writes it) reads here too.
    let theirs =
        Sm2Key::from_pkcs8_pem(&std::fs::read_to_string(d.join("theirs.pem")).unwrap()).unwrap();
    assert_eq!(theirs.public(), public);
}

#[test]
fn sm2_encryption_interoperates_with_openssl_both_ways() {
    if !have_openssl() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let content_key: Vec<u8> = (0u8..16).collect();
    std::fs::write(d.join("key.bin"), &content_key).unwrap();

    // OpenSSL encrypts to a gongwen key; gongwen decrypts.
    let ours = Sm2Key::generate();
    std::fs::write(
        d.join("ours.pub.pem"),
        gm::public_pem(&ours.public()).unwrap(),
    )
    .unwrap();
    openssl(
        d,
        &[
            "pkeyutl",
            "-encrypt",
            "-pubin",
            "-inkey",
            "ours.pub.pem",
            "-in",
            "key.bin",
            "-out",
            "to-ours.der",
        ],
    );
    let wrapped = std::fs::read(d.join("to-ours.der")).unwrap();
    assert_eq!(ours.decrypt(&wrapped).unwrap(), content_key);

    // gongwen encrypts to an OpenSSL key; OpenSSL decrypts.
    openssl(d, &["genpkey", "-algorithm", "SM2", "-out", "theirs.pem"]);
    openssl(
        d,
        &[
            "pkey",
            "-in",
            "theirs.pem",
            "-pubout",
            "-out",
            "theirs.pub.pem",
        ],
    );
    let public =
        gm::public_from_pem(&std::fs::read_to_string(d.join("theirs.pub.pem")).unwrap()).unwrap();
    std::fs::write(
        d.join("to-theirs.der"),
        gm::encrypt(&public, &content_key).unwrap(),
    )
    .unwrap();
    openssl(
        d,
        &[
            "pkeyutl",
            "-decrypt",
            "-inkey",
            "theirs.pem",
            "-in",
            "to-theirs.der",
            "-out",
            "back.bin",
        ],
    );
    assert_eq!(std::fs::read(d.join("back.bin")).unwrap(), content_key);
}

#[test]
fn sm3_agrees_with_openssl() {
    if !have_openssl() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(dir.path().join("data"), &data).unwrap();
    let o = openssl(dir.path(), &["dgst", "-sm3", "-r", "data"]);
    let hex: String = gm::sm3(&data).iter().map(|b| format!("{b:02x}")).collect();
    assert!(
        String::from_utf8_lossy(&o.stdout).starts_with(&hex),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}
