//! `gongwen-certs` as an administrator uses it, checked against openssl.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

fn certs(ca: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gongwen-certs"))
        .arg("--ca-dir")
        .arg(ca)
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "command failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn err(out: Output) -> String {
    assert!(!out.status.success(), "command should have failed");
    String::from_utf8(out.stderr).unwrap()
}

fn have_openssl() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn init_refuses_an_existing_ca_and_changes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let ca = d.path().join("ca");
    ok(certs(&ca, &["init", "--name", "黑龙江省公文交换 CA"]));
    let before: Vec<_> = ["ca.key", "ca.crt", "crl.pem", "registry.json"]
        .iter()
        .map(|f| std::fs::read(ca.join(f)).unwrap())
        .collect();
    let e = err(certs(&ca, &["init", "--name", "another"]));
    assert!(e.contains("already exists"), "{e}");
    let after: Vec<_> = ["ca.key", "ca.crt", "crl.pem", "registry.json"]
        .iter()
        .map(|f| std::fs::read(ca.join(f)).unwrap())
        .collect();
    assert_eq!(before, after);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(ca.join("ca.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn issue_writes_key_cert_and_ca_and_refuses_bad_or_duplicate_ids() {
    let d = tempfile::tempdir().unwrap();
    let ca = d.path().join("ca");
    let out = d.path().join("out");
    ok(certs(&ca, &["init", "--name", "test"]));
    let o = out.to_str().unwrap();
    ok(certs(
        &ca,
        &[
            "issue",
            "--role",
            "node",
            "--id",
            "harbin-gov",
            "--name",
            "哈尔滨市人民政府",
            "--out",
            o,
        ],
    ));
    for f in ["harbin-gov.crt", "harbin-gov.key", "ca.crt"] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(out.join("harbin-gov.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let e = err(certs(
        &ca,
        &["issue", "--role", "node", "--id", "Harbin_Gov", "--out", o],
    ));
    assert!(e.contains("not a valid node id"), "{e}");
    let e = err(certs(
        &ca,
        &["issue", "--role", "node", "--id", "harbin-gov", "--out", o],
    ));
    assert!(e.contains("--renew"), "{e}");
    ok(certs(
        &ca,
        &[
            "issue",
            "--role",
            "node",
            "--id",
            "harbin-gov",
            "--renew",
            "--out",
            o,
        ],
    ));
    let e = err(certs(
        &ca,
        &[
            "issue", "--role", "node", "--id", "x1", "--dns", "x", "--out", o,
        ],
    ));
    assert!(e.contains("only for the hub"), "{e}");

    // The display name and role are readable from the certificate.
    let der = rustls_pki_types::pem::PemObject::from_pem_file(out.join("harbin-gov.crt"));
    let der: rustls_pki_types::CertificateDer = der.unwrap();
    let id = gongwen_common::pki::CertIdentity::from_der(&der).unwrap();
    assert_eq!(id.name.as_deref(), Some("哈尔滨市人民政府"));
    assert_eq!(id.role, gongwen_common::Role::Node);
}

#[test]
fn revoking_an_unknown_id_is_an_error_and_the_crl_follows_revocations() {
    let d = tempfile::tempdir().unwrap();
    let ca = d.path().join("ca");
    ok(certs(&ca, &["init", "--name", "test"]));
    let e = err(certs(&ca, &["revoke", "--id", "nobody"]));
    assert!(
        e.contains("no certificate was ever issued to nobody"),
        "{e}"
    );
    let o = d.path().join("o");
    ok(certs(
        &ca,
        &[
            "issue",
            "--role",
            "node",
            "--id",
            "daqing-gov",
            "--out",
            o.to_str().unwrap(),
        ],
    ));
    let e = err(certs(
        &ca,
        &["revoke", "--id", "daqing-gov", "--reason", "bored"],
    ));
    assert!(e.contains("unknown reason"), "{e}");
    ok(certs(
        &ca,
        &["revoke", "--id", "daqing-gov", "--reason", "key-compromise"],
    ));
    let e = err(certs(&ca, &["revoke", "--id", "daqing-gov"]));
    assert!(e.contains("already revoked"), "{e}");
}

#[test]
fn list_json_and_openssl_verify_agree() {
    let d = tempfile::tempdir().unwrap();
    let ca = d.path().join("ca");
    let out = d.path().join("out");
    let o = out.to_str().unwrap();
    ok(certs(&ca, &["init", "--name", "test"]));
    ok(certs(
        &ca,
        &[
            "issue",
            "--role",
            "hub",
            "--id",
            "hub",
            "--ip",
            "127.0.0.1",
            "--out",
            o,
        ],
    ));
    ok(certs(
        &ca,
        &["issue", "--role", "node", "--id", "harbin-gov", "--out", o],
    ));
    ok(certs(
        &ca,
        &[
            "issue",
            "--role",
            "supervisor",
            "--id",
            "prov-supervision",
            "--out",
            o,
        ],
    ));
    ok(certs(&ca, &["revoke", "--id", "harbin-gov"]));

    let rows: serde_json::Value =
        serde_json::from_str(&ok(certs(&ca, &["list", "--json"]))).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for r in rows {
        for key in ["id", "name", "role", "serial", "not_after", "status"] {
            assert!(r.get(key).is_some(), "{key} missing in {r}");
        }
    }
    let status = |id: &str| {
        rows.iter().find(|r| r["id"] == id).unwrap()["status"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(status("hub"), "valid");
    assert_eq!(status("prov-supervision"), "valid");
    assert_eq!(status("harbin-gov"), "revoked");

    if !have_openssl() {
        eprintln!(
            "SKIPPED: openssl is not installed; `list` was not compared with `openssl verify`"
        );
        return;
    }
    for id in ["hub", "harbin-gov", "prov-supervision"] {
        let cert = out.join(format!("{id}.crt"));
        let plain = Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(ca.join("ca.crt"))
            .arg(&cert)
            .output()
            .unwrap();
        assert!(plain.status.success(), "openssl verify {id}: {plain:?}");
        let with_crl = Command::new("openssl")
            .args(["verify", "-crl_check", "-CAfile"])
            .arg(ca.join("ca.crt"))
            .arg("-CRLfile")
            .arg(ca.join("crl.pem"))
            .arg(&cert)
            .output()
            .unwrap();
        assert_eq!(
            with_crl.status.success(),
            status(id) == "valid",
            "openssl and list disagree on {id}: {}",
            String::from_utf8_lossy(&with_crl.stderr)
        );
    }
    // openssl reads the same serial the registry lists.
    let serial = Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(out.join("hub.crt"))
        .output()
        .unwrap();
    let printed = String::from_utf8(serial.stdout).unwrap().to_lowercase();
    let listed = rows.iter().find(|r| r["id"] == "hub").unwrap()["serial"]
        .as_str()
        .unwrap();
    assert_eq!(printed.trim(), format!("serial={listed}"));
}

#[test]
fn sign_takes_only_the_id_and_key_from_a_csr() {
    let d = tempfile::tempdir().unwrap();
    let ca = d.path().join("ca");
    ok(certs(&ca, &["init", "--name", "test"]));
    // A CSR that asks for more than it should get (CA powers).
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "daqing-gov");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let csr = params.serialize_request(&key).unwrap();
    let csr_path = d.path().join("daqing-gov.csr");
    std::fs::write(&csr_path, csr.pem().unwrap()).unwrap();
    let cert_path = d.path().join("signed").join("daqing-gov.crt");
    std::fs::create_dir_all(cert_path.parent().unwrap()).unwrap();
    ok(certs(
        &ca,
        &[
            "sign",
            "--csr",
            csr_path.to_str().unwrap(),
            "--role",
            "supervisor",
            "--out",
            cert_path.to_str().unwrap(),
        ],
    ));
    assert!(cert_path.parent().unwrap().join("ca.crt").exists());
    let der: rustls_pki_types::CertificateDer =
        rustls_pki_types::pem::PemObject::from_pem_file(&cert_path).unwrap();
    let id = gongwen_common::pki::CertIdentity::from_der(&der).unwrap();
    assert_eq!(id.id.as_str(), "daqing-gov");
    assert_eq!(id.role, gongwen_common::Role::Supervisor);
    let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
    assert!(!parsed.is_ca(), "a CSR must not obtain CA powers");

    std::fs::write(&csr_path, "not a csr").unwrap();
    let e = err(certs(
        &ca,
        &[
            "sign",
            "--csr",
            csr_path.to_str().unwrap(),
            "--role",
            "node",
            "--out",
            "x.crt",
        ],
    ));
    assert!(e.contains("certificate signing request"), "{e}");
}

#[test]
fn every_command_has_help() {
    let d = tempfile::tempdir().unwrap();
    for sub in [
        &[][..],
        &["init"],
        &["issue"],
        &["sign"],
        &["revoke"],
        &["crl"],
        &["list"],
    ] {
        let mut args: Vec<&str> = sub.to_vec();
        args.push("--help");
        let out = ok(certs(d.path(), &args));
        assert!(out.contains("Usage"), "{sub:?}: {out}");
    }
    let e = err(Command::new(env!("CARGO_BIN_EXE_gongwen-certs"))
        .arg("list")
        .output()
        .unwrap());
    assert!(e.contains("--ca-dir"), "{e}");
}

/// `federate` signs the peer's domain and CA with our CA key: openssl
/// checks the signature with nothing but our CA certificate, and the
/// statement carries the very certificate the peer handed over.
#[test]
fn federate_signs_the_peer_ca_as_openssl_verifies_and_refuses_what_is_not_a_peer_ca() {
    use gongwen_common::federation::FederationStatement;
    use gongwen_common::signed::{Statement, StatementKind};
    let d = tempfile::tempdir().unwrap();
    let (ours, theirs) = (d.path().join("hlj"), d.path().join("national"));
    ok(certs(&ours, &["init", "--name", "黑龙江省公文交换 CA"]));
    ok(certs(&theirs, &["init", "--name", "国家公文交换 CA"]));
    let fed = d.path().join("federation/national.fed");
    let out = ok(certs(
        &ours,
        &[
            "federate",
            "--domain",
            "national",
            "--peer-ca",
            theirs.join("ca.crt").to_str().unwrap(),
            "--out",
            fed.to_str().unwrap(),
        ],
    ));
    // The fingerprint to compare by phone is openssl's.
    let fp = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(theirs.join("ca.crt"))
        .output()
        .expect("openssl is needed for this test (Debian: openssl)");
    let fp = String::from_utf8(fp.stdout).unwrap();
    let fp = fp.trim().rsplit('=').next().unwrap();
    assert!(out.contains(fp), "{out} lacks {fp}");
    assert!(out.contains("[[federation.peers]]"), "{out}");

    let bytes = std::fs::read(&fed).unwrap();
    let our_der = pem_der(&ours.join("ca.crt"));
    let st = FederationStatement::verify(&bytes, &our_der).unwrap();
    assert_eq!(st.domain.as_str(), "national");
    assert_eq!(st.peer_ca, pem_der(&theirs.join("ca.crt")));
    let raw = Statement::decode(&bytes, StatementKind::Federation).unwrap();
    let msg = d.path().join("signed.bin");
    let sig = d.path().join("sig.der");
    let key = d.path().join("ca.pub");
    std::fs::write(&msg, raw.signed_message()).unwrap();
    std::fs::write(&sig, &raw.signature).unwrap();
    let pubkey = Command::new("openssl")
        .args(["x509", "-noout", "-pubkey", "-in"])
        .arg(ours.join("ca.crt"))
        .output()
        .unwrap();
    std::fs::write(&key, pubkey.stdout).unwrap();
    let verified = Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(&key)
        .arg("-signature")
        .arg(&sig)
        .arg(&msg)
        .output()
        .unwrap();
    assert!(
        verified.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&verified.stdout)
    );
    // Not a CA certificate; our own CA; a bad domain.
    ok(certs(
        &theirs,
        &[
            "issue",
            "--role",
            "hub",
            "--id",
            "hub",
            "--out",
            d.path().join("nat-hub").to_str().unwrap(),
        ],
    ));
    for (args, says) in [
        (
            vec!["--domain", "national", "--peer-ca", "nat-hub/hub.crt"],
            "not a CA certificate",
        ),
        (
            vec!["--domain", "national", "--peer-ca", "hlj/ca.crt"],
            "does not federate with itself",
        ),
        (
            vec!["--domain", "National", "--peer-ca", "national/ca.crt"],
            "not a valid domain",
        ),
    ] {
        let mut all: Vec<String> = vec!["federate".into()];
        for a in args {
            all.push(if a.contains('/') {
                d.path().join(a).to_str().unwrap().to_owned()
            } else {
                a.to_owned()
            });
        }
        all.extend(["--out".into(), "x.fed".into()]);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let e = err(certs(&ours, &all));
        assert!(e.contains(says), "{says:?} not in {e}");
    }
}

fn pem_der(path: &Path) -> Vec<u8> {
    gongwen_common::pki::load_certs(path).unwrap()[0].to_vec()
}
