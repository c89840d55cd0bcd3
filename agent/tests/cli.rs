//! `gongwen-agent` as a unit's administrator runs it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

fn agent(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gongwen-agent"))
        .args(args)
        .output()
        .unwrap()
}

fn err(out: Output) -> String {
    assert!(!out.status.success(), "should have failed: {out:?}");
    String::from_utf8(out.stderr).unwrap()
}

fn write_config(dir: &Path, extra: &str) -> String {
    let p = dir.join("agent.toml");
    std::fs::write(
        &p,
        format!(
            "node_id = \"harbin-gov\"\nhub = \"127.0.0.1:7443\"\nhub_name = \"hub\"\nroot = \"data\"\n{extra}\n[tls]\ncert = \"harbin-gov.crt\"\nkey = \"harbin-gov.key\"\nca = \"ca.crt\"\n"
        ),
    )
    .unwrap();
    p.to_str().unwrap().to_owned()
}

#[test]
fn an_unknown_config_key_is_named_with_its_file() {
    let d = tempfile::tempdir().unwrap();
    let p = write_config(d.path(), "speed = 3");
    let e = err(agent(&["run", "--config", &p]));
    assert!(e.contains("agent.toml") && e.contains("speed"), "{e}");
}

#[test]
fn a_missing_certificate_is_named() {
    let d = tempfile::tempdir().unwrap();
    let p = write_config(d.path(), "");
    let e = err(agent(&["run", "--config", &p]));
    assert!(
        e.contains("harbin-gov.crt") && e.contains("No such file"),
        "{e}"
    );
}

#[test]
fn keygen_writes_a_private_key_and_a_csr_and_never_overwrites_the_key() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("keys");
    let o = out.to_str().unwrap();
    let r = agent(&["keygen", "--id", "daqing-gov", "--out", o]);
    assert!(r.status.success(), "{r:?}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(out.join("daqing-gov.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let csr = std::fs::read_to_string(out.join("daqing-gov.csr")).unwrap();
    assert!(csr.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
    let key = std::fs::read(out.join("daqing-gov.key")).unwrap();

    let e = err(agent(&["keygen", "--id", "daqing-gov", "--out", o]));
    assert!(e.contains("already exists"), "{e}");
    assert_eq!(std::fs::read(out.join("daqing-gov.key")).unwrap(), key);

    let e = err(agent(&["keygen", "--id", "Daqing", "--out", o]));
    assert!(e.contains("not a valid node id"), "{e}");
}

#[test]
fn every_command_has_help() {
    for sub in [&[][..], &["run"], &["keygen"]] {
        let mut args: Vec<&str> = sub.to_vec();
        args.push("--help");
        let out = agent(&args);
        assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Usage"));
    }
}

/// A CA with the certificates of harbin-gov and daqing-gov, and a CA
/// certificate, in `dir` (`<id>.crt`, `<id>.key`, `ca.crt`).
fn two_units(dir: &Path) {
    use gongwen_certs::{Ca, IssueRequest, Validity};
    let now = time::OffsetDateTime::now_utc();
    let mut ca = Ca::init(&dir.join("ca"), "test", now, 30, 30).unwrap();
    for id in ["harbin-gov", "daqing-gov"] {
        let id = gongwen_common::NodeId::parse(id).unwrap();
        let req = IssueRequest {
            id: id.clone(),
            role: gongwen_common::Role::Node,
            name: None,
            dns: vec![],
            ips: vec![],
            validity: Validity::days_from(now, 30),
            renew: false,
        };
        let issued = ca.issue(&req, now).unwrap();
        std::fs::write(dir.join(format!("{id}.crt")), issued.cert_pem).unwrap();
        std::fs::write(dir.join(format!("{id}.key")), issued.key_pem).unwrap();
    }
    std::fs::copy(dir.join("ca/ca.crt"), dir.join("ca.crt")).unwrap();
}

#[test]
fn each_bad_file_in_the_config_is_named_with_the_config_file_and_key_once() {
    // (what to put wrong in agent.toml, the key, words the error must hold)
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "key = \"daqing-gov.key\"",
            "tls.key",
            &[
                "daqing-gov.key is not the private key of the certificate",
                "harbin-gov.crt",
            ],
        ),
        (
            "ca = \"daqing-gov.crt\"",
            "tls.ca",
            &["is not a CA certificate", "node certificate of daqing-gov"],
        ),
        (
            "root = \"occupied\"",
            "root",
            &["occupied is a file, not a folder"],
        ),
    ];
    for (line, key, words) in cases {
        let d = tempfile::tempdir().unwrap();
        two_units(d.path());
        std::fs::write(d.path().join("occupied"), b"a file").unwrap();
        let p = d.path().join("agent.toml");
        let mut text = "node_id = \"harbin-gov\"\nhub = \"127.0.0.1:7443\"\nhub_name = \"hub\"\nroot = \"data\"\n[tls]\ncert = \"harbin-gov.crt\"\nkey = \"harbin-gov.key\"\nca = \"ca.crt\"\n".to_owned();
        let (k, _) = line.split_once(" = ").unwrap();
        text = text
            .lines()
            .map(|l| {
                if l.starts_with(&format!("{k} = ")) {
                    (*line).to_owned()
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(&p, text).unwrap();
        let e = err(agent(&["run", "--config", p.to_str().unwrap()]));
        assert!(
            e.contains("agent.toml"),
            "{key}: the config file is not named: {e}"
        );
        assert!(
            e.contains(&format!("`{key}`")),
            "{key}: the key is not named: {e}"
        );
        for w in *words {
            assert_eq!(
                e.matches(w).count(),
                1,
                "{key}: {w:?} not said exactly once: {e}"
            );
        }
        assert_eq!(e.lines().count(), 1, "{key}: one line: {e}");
    }
}

#[test]
fn users_and_tokens_are_managed_from_the_command_line_with_passwords_from_stdin() {
    use std::io::Write;
    let d = tempfile::tempdir().unwrap();
    let p = write_config(d.path(), "");
    let run = |args: &[&str], stdin: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_gongwen-agent"))
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let added = run(
        &[
            "user",
            "add",
            "li.si",
            "--display-name",
            "李四",
            "--role",
            "clerk",
            "--config",
            &p,
        ],
        "一个足够长的密码\n",
    );
    assert!(added.status.success(), "{added:?}");
    // The password went in through stdin only: it is not in the file.
    let file = std::fs::read_to_string(d.path().join("data/state/accounts.json")).unwrap();
    assert!(!file.contains("一个足够长的密码") && file.contains("$argon2id$"));
    let short = run(
        &[
            "user",
            "add",
            "wang",
            "--display-name",
            "王五",
            "--config",
            &p,
        ],
        "short\n",
    );
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 8"));
    let list = run(&["user", "list", "--json", "--config", &p], "");
    let v: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(v[0]["name"], "li.si");
    assert_eq!(v[0]["display_name"], "李四");
    assert_eq!(v[0]["role"], "clerk");

    let made = run(&["token", "create", "--user", "li.si", "--config", &p], "");
    assert!(made.status.success(), "{made:?}");
    let out = String::from_utf8(made.stdout).unwrap();
    let token = out.lines().last().unwrap();
    assert!(token.starts_with("gw_") && !token.contains(' '), "{out}");
    let tokens = run(&["token", "list", "--json", "--config", &p], "");
    let v: serde_json::Value = serde_json::from_slice(&tokens.stdout).unwrap();
    let id = v[0]["id"].as_str().unwrap().to_owned();
    assert!(!String::from_utf8_lossy(&tokens.stdout).contains(token));
    assert!(
        run(&["token", "revoke", &id, "--config", &p], "")
            .status
            .success()
    );
    assert!(
        run(
            &["user", "passwd", "li.si", "--config", &p],
            "另一个足够长的密码\n"
        )
        .status
        .success()
    );
    assert!(
        run(&["user", "remove", "li.si", "--config", &p], "")
            .status
            .success()
    );
    let gone = run(&["user", "remove", "li.si", "--config", &p], "");
    assert!(String::from_utf8_lossy(&gone.stderr).contains("no user named li.si"));
}
