//! `gongwen-hub check` and `gongwen-agent check`: every problem on its own
//! line in plain words, exit 0 only when all is well. Real files, a real
//! hub and agent on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use gongwen_common::Role;
use gongwen_tests::{Net, bin};

fn check(program: &str, config: &Path) -> (bool, String) {
    let o = Command::new(bin(program))
        .args(["check", "--config"])
        .arg(config)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_check_names_each_problem_on_its_own_line() {
    let net = Net::new();
    net.issue("harbin-gov", Role::Node);
    let good = net.hub_config("127.0.0.1:0".parse().unwrap());
    let (ok, text) = check("gongwen-hub", &good.path);
    assert!(ok && text.contains("all is well"), "{text}");

    // A key that is another unit's and a CRL that is not there: both said.
    let bad = net.path().join("hub-bad.toml");
    let toml = std::fs::read_to_string(&good.path)
        .unwrap()
        .replace("hub/hub.key", "harbin-gov/harbin-gov.key")
        .replace("ca/crl.pem", "ca/missing-crl.pem");
    std::fs::write(&bad, toml).unwrap();
    let (ok, text) = check("gongwen-hub", &bad);
    assert!(!ok, "{text}");
    let problems: Vec<&str> = text.lines().filter(|l| l.starts_with("problem:")).collect();
    assert_eq!(problems.len(), 2, "{text}");
    assert!(
        problems
            .iter()
            .any(|l| l.contains("tls.key")
                && l.contains("is not the private key of the certificate")),
        "{text}"
    );
    assert!(
        problems
            .iter()
            .any(|l| l.contains("tls.crl") && l.contains("missing-crl.pem")),
        "{text}"
    );

    // The listen port taken by a running hub.
    let hub = net.start_hub().await;
    let busy = net.hub_config(hub.addr);
    let (ok, text) = check("gongwen-hub", &busy.path);
    assert!(!ok && text.contains("is in use"), "{text}");
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_check_asks_the_hub_or_the_running_agent() {
    let net = Net::new();
    net.issue("harbin-gov", Role::Node);
    net.issue("daqing-gov", Role::Node);
    let hub = net.start_hub().await;
    let config = net.agent_config("harbin-gov", hub.addr);

    // No agent running: the check connects itself and is admitted.
    let (ok, text) = check("gongwen-agent", &config.path);
    assert!(ok && text.contains("admits us as harbin-gov"), "{text}");

    // The agent running: it is asked, not replaced.
    let mut agent = net.start_agent("harbin-gov", hub.addr);
    agent.wait_connected().await;
    let (ok, text) = check("gongwen-agent", &config.path);
    assert!(
        ok && text.contains("the running agent is connected"),
        "{text}"
    );
    agent.stop().await;

    // Another unit's certificate in this unit's config: named.
    let wrong = net.path().join("harbin-wrong.toml");
    let toml = std::fs::read_to_string(&config.path)
        .unwrap()
        .replace("harbin-gov/harbin-gov.crt", "daqing-gov/daqing-gov.crt");
    std::fs::write(&wrong, toml).unwrap();
    let (ok, text) = check("gongwen-agent", &wrong);
    assert!(!ok, "{text}");
    assert!(
        text.contains("daqing-gov's certificate, but node_id is harbin-gov"),
        "{text}"
    );
    assert!(text.contains("is not the private key"), "{text}");

    // The hub down: unreachable, in plain words.
    hub.stop().await;
    let down = net.path().join("harbin-down.toml");
    let toml = std::fs::read_to_string(&config.path).unwrap();
    std::fs::write(&down, format!("connect_timeout = \"1s\"\n{toml}")).unwrap();
    let (ok, text) = check("gongwen-agent", &down);
    assert!(!ok && text.contains("unreachable"), "{text}");
}
