//! `gongwen-hub` as an operator runs it: clear one-line errors for every
//! bad start, the bound address in the log, and the `nodes` query.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use gongwen_certs::{Ca, IssueRequest, Validity};
use gongwen_common::{NodeId, Role};
use time::OffsetDateTime;

fn hub(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gongwen-hub"));
    c.args(args);
    c
}

fn err(out: Output) -> String {
    assert!(!out.status.success(), "should have failed: {out:?}");
    String::from_utf8(out.stderr).unwrap()
}

/// A CA with a hub certificate and a node certificate.
fn setup(dir: &Path) {
    let now = OffsetDateTime::now_utc();
    let mut ca = Ca::init(&dir.join("ca"), "test", now, 30, 30).unwrap();
    for (id, role) in [("hub", Role::Hub), ("harbin-gov", Role::Node)] {
        let id = NodeId::parse(id).unwrap();
        let req = IssueRequest {
            id: id.clone(),
            role,
            name: None,
            dns: vec![],
            ips: vec![],
            validity: Validity::days_from(now, 30),
            renew: false,
        };
        let issued = ca.issue(&req, now).unwrap();
        ca.write_issued(&dir.join(id.as_str()), &id, &issued)
            .unwrap();
    }
}

fn config(dir: &Path, listen: &str, cert: &str, extra: &str) -> std::path::PathBuf {
    let p = dir.join("hub.toml");
    std::fs::write(
        &p,
        format!(
            "listen = \"{listen}\"\ndata_dir = \"data\"\n{extra}\n[tls]\ncert = \"{cert}\"\nkey = \"hub/hub.key\"\nca = \"ca/ca.crt\"\ncrl = \"ca/crl.pem\"\n"
        ),
    )
    .unwrap();
    p
}

#[test]
fn an_unknown_config_key_is_named_with_its_file() {
    let d = tempfile::tempdir().unwrap();
    let p = config(d.path(), "127.0.0.1:0", "hub/hub.crt", "colour = \"red\"");
    let e = err(hub(&["serve", "--config", p.to_str().unwrap()])
        .output()
        .unwrap());
    assert!(e.contains("hub.toml") && e.contains("colour"), "{e}");
}

#[test]
fn a_missing_config_or_certificate_file_is_named() {
    let d = tempfile::tempdir().unwrap();
    let e = err(hub(&["serve", "--config", "/nonexistent/hub.toml"])
        .output()
        .unwrap());
    assert!(e.contains("/nonexistent/hub.toml"), "{e}");
    setup(d.path());
    let p = config(d.path(), "127.0.0.1:0", "hub/missing.crt", "");
    let e = err(hub(&["serve", "--config", p.to_str().unwrap()])
        .output()
        .unwrap());
    assert!(
        e.contains("missing.crt") && e.contains("No such file"),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "one clear line: {e}");
}

#[test]
fn a_damaged_key_is_reported() {
    let d = tempfile::tempdir().unwrap();
    setup(d.path());
    std::fs::write(d.path().join("hub/hub.key"), "not a key").unwrap();
    let p = config(d.path(), "127.0.0.1:0", "hub/hub.crt", "");
    let e = err(hub(&["serve", "--config", p.to_str().unwrap()])
        .output()
        .unwrap());
    assert!(e.contains("hub.key") && e.contains("private key"), "{e}");
}

#[test]
fn a_node_certificate_cannot_run_the_hub() {
    let d = tempfile::tempdir().unwrap();
    setup(d.path());
    std::fs::copy(
        d.path().join("harbin-gov/harbin-gov.key"),
        d.path().join("hub/hub.key"),
    )
    .unwrap();
    let p = config(d.path(), "127.0.0.1:0", "harbin-gov/harbin-gov.crt", "");
    let e = err(hub(&["serve", "--config", p.to_str().unwrap()])
        .output()
        .unwrap());
    assert!(e.contains("--role hub"), "{e}");
}

#[test]
fn an_address_in_use_is_one_clear_line() {
    let d = tempfile::tempdir().unwrap();
    setup(d.path());
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let p = config(d.path(), &addr, "hub/hub.crt", "");
    let e = err(hub(&["serve", "--config", p.to_str().unwrap()])
        .output()
        .unwrap());
    assert!(e.contains(&addr) && e.contains("already in use"), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
}

#[test]
fn nodes_says_plainly_when_no_hub_runs() {
    let d = tempfile::tempdir().unwrap();
    setup(d.path());
    let p = config(d.path(), "127.0.0.1:0", "hub/hub.crt", "");
    let e = err(hub(&["nodes", "--config", p.to_str().unwrap()])
        .output()
        .unwrap());
    assert!(e.contains("not running"), "{e}");
}

#[test]
fn serve_logs_its_address_answers_nodes_and_stops_on_sigterm() {
    let d = tempfile::tempdir().unwrap();
    setup(d.path());
    let p = config(d.path(), "127.0.0.1:0", "hub/hub.crt", "");
    let mut child = hub(&["serve", "--config", p.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(20);
    let addr = loop {
        assert!(
            Instant::now() < deadline,
            "no 'listening on' line within 20 s"
        );
        let line = lines.next().expect("hub exited before listening").unwrap();
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    assert!(
        addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"),
        "{addr}"
    );
    // A second hub on the same data directory is refused.
    let e = err(hub(&["serve", "--config", p.to_str().unwrap()])
        .output()
        .unwrap());
    assert!(e.contains("already running"), "{e}");

    let out = hub(&["nodes", "--config", p.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v, serde_json::json!([]));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(d.path().join("data/hub.sock"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "hub exited with {status:?} after SIGTERM");
}

#[test]
fn every_command_has_help() {
    for sub in [&[][..], &["serve"], &["nodes"]] {
        let mut args: Vec<&str> = sub.to_vec();
        args.push("--help");
        let out = hub(&args).output().unwrap();
        assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Usage"));
    }
}

/// A complete hub.toml with some keys set otherwise.
fn config_with(dir: &Path, set: &[(&str, &str)]) -> std::path::PathBuf {
    let get = |k: &str, default: &str| {
        set.iter()
            .find(|(key, _)| *key == k)
            .map_or(default.to_owned(), |(_, v)| (*v).to_owned())
    };
    let p = dir.join("hub.toml");
    std::fs::write(
        &p,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n[tls]\ncert = \"{}\"\nkey = \"{}\"\nca = \"{}\"\ncrl = \"{}\"\n",
            get("data_dir", "data"),
            get("tls.cert", "hub/hub.crt"),
            get("tls.key", "hub/hub.key"),
            get("tls.ca", "ca/ca.crt"),
            get("tls.crl", "ca/crl.pem"),
        ),
    )
    .unwrap();
    p
}

#[test]
fn each_bad_file_in_the_config_is_named_with_the_config_file_and_key_once() {
    // (the key set wrongly, its value, words the error must hold)
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "tls.ca",
            "harbin-gov/harbin-gov.crt",
            &["is not a CA certificate", "node certificate of harbin-gov"],
        ),
        (
            "tls.key",
            "harbin-gov/harbin-gov.key",
            &[
                "harbin-gov.key is not the private key of the certificate",
                "hub.crt",
            ],
        ),
        (
            "data_dir",
            "occupied",
            &["occupied is a file, not a folder"],
        ),
        (
            "tls.cert",
            "hub/missing.crt",
            &["missing.crt", "No such file"],
        ),
        ("tls.crl", "ca/ca.crt", &["ca.crt", "revocation list"]),
    ];
    for (key, value, words) in cases {
        let d = tempfile::tempdir().unwrap();
        setup(d.path());
        std::fs::write(d.path().join("occupied"), b"a file").unwrap();
        let p = config_with(d.path(), &[(key, value)]);
        let e = err(hub(&["serve", "--config", p.to_str().unwrap()])
            .output()
            .unwrap());
        assert!(
            e.contains("hub.toml"),
            "{key}: the config file is not named: {e}"
        );
        assert!(
            e.contains(&format!("`{key}`")),
            "{key}: the key is not named: {e}"
        );
        for w in *words {
            assert!(e.contains(w), "{key}: {w:?} missing: {e}");
            assert_eq!(e.matches(w).count(), 1, "{key}: said twice: {e}");
        }
        assert_eq!(e.lines().count(), 1, "{key}: one line: {e}");
        assert!(
            !e.contains("KeyMismatch") && !e.contains("os error 17"),
            "{e}"
        );
    }
}
