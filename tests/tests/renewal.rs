//! Renewal without a visit: `gongwen-certs renew` re-certifies a unit's
//! key, `gongwen-hub renewals add` hands it to the running hub, the hub
//! pushes it to the connected agent, which checks and installs it and
//! connects again with it; documents signed with it verify; a restarted
//! agent keeps using it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use gongwen_common::Role;
use gongwen_tests::{Net, bin, wait_all_delivered, wait_inbox, wait_until};

fn run(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{cmd:?}: {text}");
    text
}

fn enddate(cert: &Path) -> String {
    let o = Command::new("openssl")
        .args(["x509", "-noout", "-enddate", "-in"])
        .arg(cert)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_reaches_the_unit_which_reconnects_with_it() {
    let net = Net::new();
    net.issue("harbin-gov", Role::Node);
    net.issue("daqing-gov", Role::Node);
    let hub = net.start_hub().await;
    let mut harbin = net.start_agent("harbin-gov", hub.addr);
    let mut daqing = net.start_agent("daqing-gov", hub.addr);
    harbin.wait_connected().await;
    daqing.wait_connected().await;
    let before = harbin.parts.identity().credentials().identity();

    let ca = net.path().join("ca");
    let out = net.path().join("renewed");
    let said = run(Command::new(bin("gongwen-certs"))
        .arg("--ca-dir")
        .arg(&ca)
        .args(["renew", "--id", "harbin-gov", "--days", "400", "--out"])
        .arg(&out));
    assert!(
        said.contains("renewed harbin-gov") && said.contains("same key"),
        "{said}"
    );
    let renewed = out.join("harbin-gov.crt");
    let new_end = enddate(&renewed);
    assert_ne!(
        new_end,
        enddate(&net.path().join("harbin-gov/harbin-gov.crt"))
    );

    let said = run(Command::new(bin("gongwen-hub"))
        .args(["renewals", "add"])
        .arg(&renewed)
        .arg("--config")
        .arg(net.path().join("hub.toml")));
    assert!(said.contains("queued the renewal of harbin-gov"), "{said}");
    let queued = net.path().join("hub-data/renewals/harbin-gov.crt");

    // The hub delivers it; the agent installs it and connects again with
    // it; the hub, seeing that, removes it from its queue.
    let installed = net.root("harbin-gov").join("state/renewed.crt");
    wait_until("the renewal delivered, installed and used", || {
        (installed.exists() && !queued.exists()).then_some(())
    })
    .await;
    assert_eq!(enddate(&installed), new_end);
    let after = harbin.parts.identity().credentials().identity();
    assert!(after.not_after > before.not_after + time::Duration::days(300));
    harbin.wait_connected().await;

    // What it signs now carries the renewed certificate and verifies.
    net.drop_file("harbin-gov", "daqing-gov", "续期后.txt", b"renewed");
    wait_inbox(&net.root("daqing-gov"), "harbin-gov", 1).await;
    wait_all_delivered(&net.root("harbin-gov"), 1).await;

    // Restarted, the agent keeps the renewed certificate.
    harbin.stop().await;
    let harbin = net.start_agent("harbin-gov", hub.addr);
    assert_eq!(
        harbin.parts.identity().credentials().identity().not_after,
        after.not_after,
        "a restarted agent went back to the configured certificate"
    );

    // Every unit expiring soon at once (the hub's certificate is not one).
    let said = run(Command::new(bin("gongwen-certs"))
        .arg("--ca-dir")
        .arg(&ca)
        .args(["renew", "--expiring-within", "31d", "--out"])
        .arg(&out));
    assert!(said.contains("renewed daqing-gov"), "{said}");
    assert!(
        !said.contains("renewed harbin-gov") && !said.contains("renewed hub"),
        "{said}"
    );

    harbin.stop().await;
    daqing.stop().await;
    hub.stop().await;
}

#[test]
fn the_hub_refuses_to_queue_what_is_not_a_units_certificate_from_our_ca() {
    let net = Net::new();
    let other = Net::new();
    other.issue("harbin-gov", Role::Node);
    let _ = net.hub_config("127.0.0.1:0".parse().unwrap());
    let add = |cert: &Path| {
        let o = Command::new(bin("gongwen-hub"))
            .args(["renewals", "add"])
            .arg(cert)
            .arg("--config")
            .arg(net.path().join("hub.toml"))
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (ok, said) = add(&other.path().join("harbin-gov/harbin-gov.crt"));
    assert!(
        !ok && said.contains("not a valid certificate from this deployment's CA"),
        "{said}"
    );
    let (ok, said) = add(&net.path().join("hub/hub.crt"));
    assert!(!ok && said.contains("renewals are for units"), "{said}");
    assert!(
        !net.path().join("hub-data/renewals").exists()
            || gongwen_tests::count_entries(&net.path().join("hub-data/renewals")) == 0
    );
}
