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

/// Whether `openssl dgst -sm3 -verify` accepts `sig` over `msg` by the
/// key in `public_pem` under `distid` (files in `dir`).
fn openssl_sm2_verifies(dir: &Path, public_pem: &str, distid: &str, sig: &str, msg: &str) -> bool {
    let distid = format!("distid:{distid}");
    Command::new("openssl")
        .current_dir(dir)
        .args([
            "dgst",
            "-sm3",
            "-verify",
            public_pem,
            "-sigopt",
            &distid,
            "-signature",
            sig,
            msg,
        ])
        .output()
        .is_ok_and(|o| {
            o.status.success() && String::from_utf8_lossy(&o.stdout).contains("Verified OK")
        })
}

/// An SM2 key made by OpenSSL: `dir/name.pem` (PKCS#8) and
/// `dir/name.pub.pem`.
fn openssl_key(dir: &Path, name: &str) {
    let (key, public) = (format!("{name}.pem"), format!("{name}.pub.pem"));
    openssl(dir, &["genpkey", "-algorithm", "SM2", "-out", &key]);
    openssl(dir, &["pkey", "-in", &key, "-pubout", "-out", &public]);
}

#[test]
fn sm2_signatures_interoperate_with_openssl_both_ways() {
    if !gongwen_tests::tools::have_openssl(true) {
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
    assert!(openssl_sm2_verifies(
        d,
        "ours.pub.pem",
        DEFAULT_DISTID,
        "ours.sig",
        "msg"
    ));
    assert!(
        !openssl_sm2_verifies(d, "ours.pub.pem", "someone-else", "ours.sig", "msg"),
        "another id verified"
    );

    // OpenSSL makes a key and signs; gongwen reads both and verifies.
    openssl_key(d, "theirs");
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
    if !gongwen_tests::tools::have_openssl(true) {
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
    openssl_key(d, "theirs");
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
    if !gongwen_tests::tools::have_openssl(true) {
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

fn cli(dir: &Path, name: &str, args: &[&str]) -> (bool, String) {
    gongwen_tests::run_in(Some(dir), name, args)
}

/// `gongwen-certs init --suite gm` of a CA in `dir/ca`: whether it
/// worked, and what it said.
fn init_gm_ca(dir: &Path) -> (bool, String) {
    cli(
        dir,
        "gongwen-certs",
        &[
            "--ca-dir",
            "ca",
            "init",
            "--name",
            "国密 CA",
            "--suite",
            "gm",
        ],
    )
}

/// `gongwen-certs issue` of node `id` from the CA in `dir/ca` into
/// `dir/<id>`: whether it worked, and what it said.
fn issue_unit(dir: &Path, id: &str) -> (bool, String) {
    cli(
        dir,
        "gongwen-certs",
        &[
            "--ca-dir", "ca", "issue", "--role", "node", "--id", id, "--out", id,
        ],
    )
}

/// Issue the hub's certificate from the CA in `dir/ca_dir` into `dir/out`.
fn issue_hub(dir: &Path, ca_dir: &str, out: &str) {
    let (ok, said) = cli(
        dir,
        "gongwen-certs",
        &[
            "--ca-dir",
            ca_dir,
            "issue",
            "--role",
            "hub",
            "--id",
            "hub",
            "--ip",
            "127.0.0.1",
            "--out",
            out,
        ],
    );
    assert!(ok, "{said}");
}

/// Why a hub with `hub.toml` plus `extra` does not start.
async fn refused_with(dir: &Path, extra: &str) -> String {
    std::fs::write(dir.join("hub.toml"), format!("{HUB_TOML}{extra}")).unwrap();
    let config = gongwen_common::config::HubConfig::load(&dir.join("hub.toml")).unwrap();
    match gongwen_hub::server::Hub::bind(config).await {
        Ok(_) => panic!("the hub started with {extra:?}"),
        Err(e) => e.to_string(),
    }
}

const HUB_TOML: &str = r#"
listen   = "127.0.0.1:0"
data_dir = "hub-data"
[tls]
cert = "hub/hub.crt"
key  = "hub/hub.key"
ca   = "ca/ca.crt"
crl  = "ca/crl.pem"
"#;

/// A CA made with `--suite gm` says so in its certificate; a hub whose
/// hub.toml says otherwise does not start, and `check` names the fix; a
/// GM hub needs its SM2 keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_serves_only_the_suite_its_ca_was_made_for() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ok, said) = init_gm_ca(d);
    assert!(
        ok && said.contains("suite:       gm (SM2, SM3, SM4-GCM"),
        "{said}"
    );
    issue_hub(d, "ca", "hub");
    // A unit of a GM CA gets its SM2 signing and encryption keys, bound to
    // its certificate's key; OpenSSL reads the keys.
    let (ok, said) = issue_unit(d, "harbin-gov");
    assert!(ok && said.contains("harbin-gov.sm2.binding"), "{said}");
    let unit = d.join("harbin-gov");
    let cert = gongwen_common::pki::load_certs(&unit.join("harbin-gov.crt"))
        .unwrap()
        .remove(0);
    let identity = gongwen_common::pki::CertIdentity::from_der(&cert).unwrap();
    let binding = gongwen_common::signed::Sm2Binding::verify(
        &std::fs::read(unit.join("harbin-gov.sm2.binding")).unwrap(),
        &cert,
        &identity,
    )
    .unwrap();
    for (file, public) in [
        ("harbin-gov.sm2-sign.key", &binding.sign_public),
        ("harbin-gov.sm2-enc.key", &binding.enc_public),
    ] {
        use std::os::unix::fs::PermissionsExt;
        let path = unit.join(file);
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let key = Sm2Key::from_pkcs8_pem(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(&key.public(), public, "{file}");
        if gongwen_tests::tools::have_openssl(true) {
            openssl(&unit, &["pkey", "-in", file, "-noout"]);
        }
    }
    assert_eq!(binding.distid, DEFAULT_DISTID);
    let (bad, said) = cli(
        d,
        "gongwen-certs",
        &["--ca-dir", "ca", "init", "--name", "x", "--suite", "sm9"],
    );
    assert!(!bad && said.contains("sm9"), "{said}");
    if gongwen_tests::tools::have_openssl(true) {
        let o = openssl(d, &["x509", "-in", "ca/ca.crt", "-noout", "-text"]);
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("URI:gongwen:suite/gm"),
            "{}",
            String::from_utf8_lossy(&o.stdout)
        );
    }

    // hub.toml without [crypto]: the standard suite, which is not the CA's.
    std::fs::write(d.join("hub.toml"), HUB_TOML).unwrap();
    let (ok, said) = cli(d, "gongwen-hub", &["check", "--config", "hub.toml"]);
    assert!(!ok, "{said}");
    assert!(
        said.contains("crypto.suite") && said.contains("set [crypto] suite = \"gm\""),
        "{said}"
    );
    let refused = refused_with(d, "").await;
    assert!(refused.contains("made for the gm suite"), "{refused}");
    // Set to gm, the hub starts with the SM2 keys issued beside its key,
    // and without them says which is missing and where it comes from.
    std::fs::write(
        d.join("hub.toml"),
        format!("{HUB_TOML}[crypto]\nsuite = \"gm\"\n"),
    )
    .unwrap();
    let config = gongwen_common::config::HubConfig::load(&d.join("hub.toml")).unwrap();
    let hub = gongwen_hub::server::Hub::bind(config).await;
    assert!(hub.is_ok(), "a GM hub with its SM2 keys: {:?}", hub.err());
    drop(hub);
    let (ok, said) = cli(d, "gongwen-hub", &["check", "--config", "hub.toml"]);
    assert!(ok && said.contains("crypto suite gm"), "{said}");
    std::fs::rename(d.join("hub/hub.sm2-sign.key"), d.join("hub/away")).unwrap();
    let refused = refused_with(d, "[crypto]\nsuite = \"gm\"\n").await;
    assert!(
        refused.contains("tls.sm2_sign_key") && refused.contains("gongwen-certs issue"),
        "{refused}"
    );
    let (ok, said) = cli(d, "gongwen-hub", &["check", "--config", "hub.toml"]);
    assert!(!ok && said.contains("tls.sm2_sign_key"), "{said}");
    std::fs::rename(d.join("hub/away"), d.join("hub/hub.sm2-sign.key")).unwrap();
    std::fs::write(
        d.join("hub.toml"),
        format!("{HUB_TOML}[crypto]\nsuite = \"sm9\"\n"),
    )
    .unwrap();
    let wrong = gongwen_common::config::HubConfig::load(&d.join("hub.toml")).unwrap_err();
    assert!(
        wrong.to_string().contains("crypto.suite") && wrong.to_string().contains("sm9"),
        "{wrong}"
    );

    // A CA made as before is a standard one, and check says so.
    let (ok, said) = cli(
        d,
        "gongwen-certs",
        &["--ca-dir", "std-ca", "init", "--name", "CA"],
    );
    assert!(ok && said.contains("suite:       standard"), "{said}");
    issue_hub(d, "std-ca", "std-hub");
    assert!(!d.join("std-hub/hub.sm2-sign.key").exists());
    std::fs::write(
        d.join("std.toml"),
        HUB_TOML
            .replace("hub/hub.", "std-hub/hub.")
            .replace("ca/ca.crt", "std-ca/ca.crt")
            .replace("ca/crl.pem", "std-ca/crl.pem")
            .replace("hub-data", "std-data"),
    )
    .unwrap();
    let (_, said) = cli(d, "gongwen-hub", &["check", "--config", "std.toml"]);
    assert!(said.contains("crypto suite standard"), "{said}");
}

/// A statement signed in the GM suite (a receipt, here) is checked by
/// OpenSSL alone: the signed message, the SM2 signature (DER) and the
/// signing key its binding names, with the distinguishing id it records —
/// what an evidence bundle's verify.sh will do.
#[test]
fn a_gm_statement_verifies_with_openssl() {
    use gongwen_common::pki;
    use gongwen_common::signed::{Signer, Sm2Binding, Sm2Signer, StatementKind};
    if !gongwen_tests::tools::have_openssl(true) {
        return;
    }
    let net = gongwen_tests::Net::new();
    let dir = net.issue("harbin-gov", gongwen_common::Role::Node);
    let cert = pki::load_certs(&dir.join("harbin-gov.crt"))
        .unwrap()
        .remove(0);
    let key = pki::load_private_key(&dir.join("harbin-gov.key")).unwrap();
    let signer = Signer::new(&key, cert.clone()).unwrap();
    let (sign, enc) = (Sm2Key::generate(), Sm2Key::generate());
    let binding =
        Sm2Binding::for_keys(signer.identity().id.clone(), &sign, &enc, DEFAULT_DISTID, 0)
            .sign(&signer)
            .unwrap();
    let signer = signer.with_sm2(Sm2Signer::new(sign, binding, &cert).unwrap());
    let st = signer
        .sign(StatementKind::Receipt, "签收 李四".as_bytes().to_vec())
        .unwrap();
    let bound = st.sm2_binding().unwrap().unwrap();

    let d = net.path();
    std::fs::write(d.join("receipt.signed"), st.signed_message()).unwrap();
    std::fs::write(d.join("receipt.sig.der"), &st.signature).unwrap();
    std::fs::write(
        d.join("receipt.sm2.pem"),
        gm::public_pem(&bound.sign_public).unwrap(),
    )
    .unwrap();
    let verifies = |d: &Path| {
        openssl_sm2_verifies(
            d,
            "receipt.sm2.pem",
            &bound.distid,
            "receipt.sig.der",
            "receipt.signed",
        )
    };
    assert!(verifies(d));
    // The digest receipts cite is the SM3 of the signed message.
    let o = openssl(d, &["dgst", "-sm3", "-r", "receipt.signed"]);
    let hex: String = st.digest().iter().map(|b| format!("{b:02x}")).collect();
    assert!(String::from_utf8_lossy(&o.stdout).starts_with(&hex));
    // One changed byte: OpenSSL refuses it.
    let mut changed = st.signed_message();
    changed[20] ^= 1;
    std::fs::write(d.join("receipt.signed"), changed).unwrap();
    assert!(!verifies(d));
}

/// A GM unit whose keys never leave it: `gongwen-agent keygen --suite gm`
/// makes its SM2 keys and their binding beside the CSR, signed with the new
/// key; once the CA signs the CSR the binding verifies against the
/// certificate, for that unit only.
#[test]
fn keygen_makes_a_gm_units_sm2_keys_bound_by_its_new_certificate_key() {
    use gongwen_common::signed::Sm2Binding;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ok, said) = init_gm_ca(d);
    assert!(ok, "{said}");
    let (ok, said) = cli(
        d,
        "gongwen-agent",
        &[
            "keygen",
            "--id",
            "daqing-gov",
            "--out",
            "dq",
            "--suite",
            "gm",
        ],
    );
    assert!(ok && said.contains("daqing-gov.sm2.binding"), "{said}");
    let sign = |binding: &str| {
        cli(
            d,
            "gongwen-certs",
            &[
                "--ca-dir",
                "ca",
                "sign",
                "--csr",
                "dq/daqing-gov.csr",
                "--binding",
                binding,
                "--role",
                "node",
                "--out",
                "dq/daqing-gov.crt",
            ],
        )
    };
    // A GM CA takes the SM2 binding, and says so when given the other,
    // before issuing anything (the next sign needs no --renew).
    let (ok, said) = sign("dq/daqing-gov.binding");
    assert!(!ok && said.contains(".sm2.binding"), "{said}");
    assert!(!d.join("dq/daqing-gov.crt").exists());
    let (ok, said) = sign("dq/daqing-gov.sm2.binding");
    assert!(ok && said.contains("unit directory"), "{said}");
    let cert = gongwen_common::pki::load_certs(&d.join("dq/daqing-gov.crt"))
        .unwrap()
        .remove(0);
    let identity = gongwen_common::pki::CertIdentity::from_der(&cert).unwrap();
    let bytes = std::fs::read(d.join("dq/daqing-gov.sm2.binding")).unwrap();
    let binding = Sm2Binding::verify(&bytes, &cert, &identity).unwrap();
    let sign = Sm2Key::from_pkcs8_pem(
        &std::fs::read_to_string(d.join("dq/daqing-gov.sm2-sign.key")).unwrap(),
    )
    .unwrap();
    assert_eq!(binding.sign_public, sign.public());
    assert_eq!(binding.distid, DEFAULT_DISTID);
    // Another unit's certificate does not make it its own.
    issue_hub(d, "ca", "hub");
    let hub = gongwen_common::pki::load_certs(&d.join("hub/hub.crt"))
        .unwrap()
        .remove(0);
    let hub_id = gongwen_common::pki::CertIdentity::from_der(&hub).unwrap();
    assert!(Sm2Binding::verify(&bytes, &hub, &hub_id).is_err());
    // A second keygen does not replace the keys.
    let (ok, said) = cli(
        d,
        "gongwen-agent",
        &[
            "keygen",
            "--id",
            "daqing-gov",
            "--out",
            "dq",
            "--suite",
            "gm",
        ],
    );
    assert!(!ok, "{said}");
}

/// A GM unit without its SM2 keys, or with another unit's, does not start:
/// the agent names the key in agent.toml and where the keys come from, and
/// `check` says the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gm_agent_without_its_own_sm2_keys_says_which_and_why() {
    use gongwen_common::Role;
    use gongwen_tests::{Net, bin};
    let net = Net::for_suite(gongwen_common::suite::Suite::Gm);
    net.issue("harbin-gov", Role::Node);
    net.issue("daqing-gov", Role::Node);
    let any = "127.0.0.1:9".parse().unwrap();
    let config = net.agent_config("harbin-gov", any);
    assert!(gongwen_agent::Agent::new(config.clone()).is_ok());
    let keys = net.path().join("harbin-gov");
    let enc = keys.join("harbin-gov.sm2-enc.key");
    std::fs::rename(&enc, keys.join("away")).unwrap();
    let e = gongwen_agent::Agent::new(config.clone())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("tls.sm2_enc_key") && e.contains("gongwen-certs issue"),
        "{e}"
    );
    let out = Command::new(bin("gongwen-agent"))
        .args(["check", "--config"])
        .arg(&config.path)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && said.contains("tls.sm2_enc_key"),
        "{said}"
    );
    // Another unit's encryption key is not the one the binding names.
    std::fs::copy(net.path().join("daqing-gov/daqing-gov.sm2-enc.key"), &enc).unwrap();
    let e = gongwen_agent::Agent::new(config).unwrap_err().to_string();
    assert!(e.contains("is not the SM2 encryption key"), "{e}");
}

/// A GM deployment may choose its SM2 distinguishing id: the CA records
/// it, every unit's binding carries it, statements are signed with it, and
/// openssl verifies them under it (and not under the default). A bad id,
/// or one for a standard CA, is refused before anything is made.
#[test]
fn a_gm_ca_can_choose_its_sm2_distinguishing_id() {
    use gongwen_common::signed::{Sm2Binding, StatementKind};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let init = |ca: &str, suite: &str, distid: &str| {
        cli(
            d,
            "gongwen-certs",
            &[
                "--ca-dir",
                ca,
                "init",
                "--name",
                "CA",
                "--suite",
                suite,
                "--sm2-distid",
                distid,
            ],
        )
    };
    let (ok, said) = init("bad", "gm", "黑龙江 省");
    assert!(!ok && said.contains("distinguishing id"), "{said}");
    assert!(!d.join("bad").exists());
    let (ok, said) = init("std", "standard", "gongwen@hlj");
    assert!(!ok && said.contains("--suite gm"), "{said}");
    let (ok, said) = init("ca", "gm", "gongwen@hlj");
    assert!(ok && said.contains("SM2 distid:  gongwen@hlj"), "{said}");
    let (ok, said) = issue_unit(d, "harbin-gov");
    assert!(ok, "{said}");
    let unit = d.join("harbin-gov");
    let cert = gongwen_common::pki::load_certs(&unit.join("harbin-gov.crt"))
        .unwrap()
        .remove(0);
    let identity = gongwen_common::pki::CertIdentity::from_der(&cert).unwrap();
    let bytes = std::fs::read(unit.join("harbin-gov.sm2.binding")).unwrap();
    let binding = Sm2Binding::verify(&bytes, &cert, &identity).unwrap();
    assert_eq!(binding.distid, "gongwen@hlj");

    // The unit's statements are signed under that id.
    let key = gongwen_common::pki::load_private_key(&unit.join("harbin-gov.key")).unwrap();
    let signer = gongwen_common::signed::Signer::new(&key, cert.clone()).unwrap();
    let files = gongwen_common::config::Sm2Files::beside(&unit.join("harbin-gov.key"));
    let (signer, _) = gongwen_common::material::load_sm2(&unit, &files, signer).unwrap();
    let st = signer
        .sign(StatementKind::Receipt, b"a receipt".to_vec())
        .unwrap();
    st.verify_signature().unwrap();
    if gongwen_tests::tools::have_openssl(true) {
        std::fs::write(unit.join("st.signed"), st.signed_message()).unwrap();
        std::fs::write(unit.join("st.sig"), &st.signature).unwrap();
        std::fs::write(
            unit.join("sign.pub.pem"),
            gm::public_pem(&binding.sign_public).unwrap(),
        )
        .unwrap();
        assert!(openssl_sm2_verifies(
            &unit,
            "sign.pub.pem",
            "gongwen@hlj",
            "st.sig",
            "st.signed"
        ));
        assert!(!openssl_sm2_verifies(
            &unit,
            "sign.pub.pem",
            DEFAULT_DISTID,
            "st.sig",
            "st.signed"
        ));
    }
    // A unit making its own keys is told the deployment's id.
    let (ok, said) = cli(
        d,
        "gongwen-agent",
        &[
            "keygen",
            "--id",
            "daqing-gov",
            "--out",
            "dq",
            "--suite",
            "gm",
            "--sm2-distid",
            "a b",
        ],
    );
    assert!(!ok && said.contains("distinguishing id"), "{said}");
}
