//! Nothing expires by surprise: `gongwen-certs list` marks certificates
//! that expire within 30 days, and the hub warns (once a day each) of its
//! own certificate, every connected unit's and a CRL due within 7 days.
//! Real CA, a real hub process and agent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use gongwen_certs::Validity;
use gongwen_common::Role;
use gongwen_tests::{HubProcess, Net, bin, wait_until};
use time::OffsetDateTime;

fn certs(net: &Net, args: &[&str]) -> String {
    let o = Command::new(bin("gongwen-certs"))
        .arg("--ca-dir")
        .arg(net.path().join("ca"))
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_and_the_crl_are_warned_of_before_they_run_out() {
    let net = Net::new(); // the hub's certificate: 30 days
    let now = OffsetDateTime::now_utc();
    net.issue_with("harbin-gov", Role::Node, Validity::days_from(now, 10));
    net.issue_with("daqing-gov", Role::Node, Validity::days_from(now, 200));
    certs(&net, &["crl", "--days", "3"]);

    let list = certs(&net, &["list"]);
    let line = |id: &str| list.lines().find(|l| l.starts_with(id)).unwrap().to_owned();
    assert!(line("harbin-gov").contains("expires in 9 d"), "{list}");
    assert!(line("daqing-gov").contains("valid"), "{list}");
    assert!(list.contains("expire within 30 days"), "{list}");
    let json: serde_json::Value = serde_json::from_str(&certs(&net, &["list", "--json"])).unwrap();
    let harbin = json
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "harbin-gov")
        .unwrap();
    assert_eq!(harbin["expires_in_days"], 9);

    let hub = HubProcess::start(&net, "127.0.0.1:0".parse().unwrap()).await;
    let log = || std::fs::read_to_string(&hub.log).unwrap_or_default();
    wait_until("the hub's warnings at start", || {
        let l = log();
        (l.contains("the certificate of this hub (hub) expires")
            && l.contains("the revocation list must be renewed by"))
        .then_some(())
    })
    .await;
    let _harbin = gongwen_tests::RunningAgent::start(net.agent_config("harbin-gov", hub.addr));
    let _daqing = gongwen_tests::RunningAgent::start(net.agent_config("daqing-gov", hub.addr));
    hub.wait_units(2).await;
    wait_until("the warning about harbin-gov", || {
        log()
            .contains("the certificate of harbin-gov expires")
            .then_some(())
    })
    .await;
    let l = log();
    assert!(!l.contains("the certificate of daqing-gov"), "{l}");
    assert_eq!(
        l.matches("the certificate of harbin-gov expires").count(),
        1
    );
}
