//! Enrollment in bulk (`gongwen-certs enroll`): a CSV as Excel saves it
//! (BOM, Chinese names, quotes) becomes one bundle per unit; agents started
//! from their bundles connect to a real hub; running it again skips who is
//! enrolled; a bad row stops it before anything is issued.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use gongwen_common::config::AgentConfig;
use gongwen_tests::{Net, RunningAgent, bin};

fn enroll(net: &Net, csv: &Path, hub: &str, out: &Path) -> std::process::Output {
    Command::new(bin("gongwen-certs"))
        .arg("--ca-dir")
        .arg(net.path().join("ca"))
        .args(["enroll", "--units"])
        .arg(csv)
        .args(["--hub", hub, "--out"])
        .arg(out)
        .output()
        .unwrap()
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The bundle's agent.toml with its Debian paths moved under `root`.
fn bundle_config(bundle: &Path, root: &Path) -> AgentConfig {
    let toml = std::fs::read_to_string(bundle.join("agent.toml")).unwrap();
    let toml = toml
        .replace("/etc/gongwen", &bundle.display().to_string())
        .replace("/var/lib/gongwen-agent", &root.display().to_string());
    let path = bundle.join("agent-test.toml");
    std::fs::write(&path, toml).unwrap();
    AgentConfig::load(&path).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn units_enrolled_from_a_csv_connect_with_their_bundles() {
    let net = Net::new();
    let hub = net.start_hub().await;
    let csv = net.path().join("units.csv");
    std::fs::write(
        &csv,
        "\u{feff}id,name,role\r\nharbin-gov,哈尔滨市人民政府,\r\n\"daqing-gov\",\"大庆市人民政府\",node\r\nprov-supervision,省政府督查室,supervisor\r\n",
    )
    .unwrap();
    let out = net.path().join("bundles");
    let o = enroll(&net, &csv, &hub.addr.to_string(), &out);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("3 enrolled, 0 skipped"), "{}", text(&o));

    for id in ["harbin-gov", "daqing-gov", "prov-supervision"] {
        let b = out.join(id);
        for f in [
            format!("{id}.crt"),
            format!("{id}.key"),
            "ca.crt".into(),
            "agent.toml".into(),
            "安装说明.txt".into(),
        ] {
            assert!(b.join(&f).exists(), "{id}: no {f}");
        }
        let mode = std::fs::metadata(b.join(format!("{id}.key")))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{id}.key");
        // The archive holds the same files, the key still 0600.
        let listing = Command::new("tar")
            .arg("-tzvf")
            .arg(out.join(format!("{id}.tar.gz")))
            .output()
            .unwrap();
        let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
        assert!(
            listing
                .lines()
                .any(|l| l.starts_with("-rw-------") && l.ends_with(&format!("{id}/{id}.key"))),
            "{listing}"
        );
        assert!(listing.contains(&format!("{id}/agent.toml")), "{listing}");
    }
    let notes = std::fs::read_to_string(out.join("harbin-gov/安装说明.txt")).unwrap();
    assert!(notes.contains("哈尔滨市人民政府") && notes.contains(&hub.addr.to_string()));
    // The display name is in the certificate.
    let subject = Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-nameopt", "utf8", "-in"])
        .arg(out.join("daqing-gov/daqing-gov.crt"))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&subject.stdout).contains("大庆市人民政府"),
        "{}",
        String::from_utf8_lossy(&subject.stdout)
    );

    // Agents started from their bundles connect.
    let mut agents = Vec::new();
    for id in ["harbin-gov", "daqing-gov"] {
        let root = net.path().join(format!("{id}-root"));
        agents.push(RunningAgent::start(bundle_config(&out.join(id), &root)));
    }
    hub.wait_ready(&["harbin-gov", "daqing-gov"]).await;

    // Again: everyone is skipped, nothing is issued.
    let o = enroll(&net, &csv, &hub.addr.to_string(), &out);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("harbin-gov: already enrolled, skipped")
            && text(&o).contains("0 enrolled, 3 skipped"),
        "{}",
        text(&o)
    );
    for a in agents {
        a.stop().await;
    }
    hub.stop().await;
}

#[test]
fn a_bad_row_stops_the_enrollment_before_anything_is_issued() {
    let net = Net::new();
    let csv = net.path().join("units.csv");
    std::fs::write(
        &csv,
        "id,name\nharbin-gov,哈尔滨市人民政府\ndaqing-gov,\nqiqihar-gov,齐齐哈尔市人民政府\n",
    )
    .unwrap();
    let out = net.path().join("bundles");
    let o = enroll(&net, &csv, "10.0.0.1:7443", &out);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("line 3") && text(&o).contains("daqing-gov has no name"),
        "{}",
        text(&o)
    );
    assert!(!out.exists(), "bundles were written despite the bad row");
    let list = Command::new(bin("gongwen-certs"))
        .arg("--ca-dir")
        .arg(net.path().join("ca"))
        .arg("list")
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&list.stdout).contains("harbin-gov"),
        "a certificate was issued despite the bad row"
    );
    // A hub address that is not HOST:PORT is refused the same way.
    std::fs::write(&csv, "id,name\nharbin-gov,哈尔滨市人民政府\n").unwrap();
    let o = enroll(&net, &csv, "10.0.0.1", &out);
    assert!(
        !o.status.success() && text(&o).contains("HOST:PORT"),
        "{}",
        text(&o)
    );
}
