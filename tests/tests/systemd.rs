//! systemd's `Type=notify` and watchdog: the hub says READY=1 once it
//! listens, the agent once it has scanned its outbox, and both feed the
//! watchdog when WATCHDOG_USEC asks for it. A real socket standing in for
//! systemd's $NOTIFY_SOCKET, real processes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use gongwen_common::Role;
use gongwen_tests::{Net, bin};

/// What the daemon sends to the socket until `want` has all been seen.
fn wait_for(sock: &UnixDatagram, want: &[&str], child: &mut Child) -> Vec<String> {
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got: Vec<String> = Vec::new();
    let mut buf = [0u8; 512];
    while !want.iter().all(|w| got.iter().any(|g| g.contains(w))) {
        assert!(
            Instant::now() < deadline,
            "systemd was told only {got:?}, not all of {want:?}"
        );
        assert!(child.try_wait().unwrap().is_none(), "the daemon exited");
        if let Ok(n) = sock.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    got
}

fn notify_socket(net: &Net, name: &str) -> (UnixDatagram, std::path::PathBuf) {
    let path = net.path().join(name);
    (UnixDatagram::bind(&path).unwrap(), path)
}

#[test]
fn hub_and_agent_tell_systemd_when_they_are_ready_and_feed_the_watchdog() {
    let net = Net::new();
    net.issue("harbin-gov", Role::Node);
    let hub_config = net.hub_config("127.0.0.1:0".parse().unwrap());
    let (sock, path) = notify_socket(&net, "hub-notify.sock");
    let mut hub = Command::new(bin("gongwen-hub"))
        .args(["serve", "--config"])
        .arg(&hub_config.path)
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "200000")
        .stderr(std::fs::File::create(net.path().join("hub-sd.log")).unwrap())
        .spawn()
        .unwrap();
    let said = wait_for(&sock, &["READY=1", "WATCHDOG=1"], &mut hub);
    assert!(said[0].contains("READY=1"), "{said:?}");
    let log = std::fs::read_to_string(net.path().join("hub-sd.log")).unwrap();
    assert!(
        log.contains("listening on"),
        "ready before listening: {log}"
    );

    // The agent: ready once its outbox is scanned, hub or no hub.
    let agent_config = net.agent_config("harbin-gov", "127.0.0.1:9".parse().unwrap());
    let (sock, path) = notify_socket(&net, "agent-notify.sock");
    let mut agent = Command::new(bin("gongwen-agent"))
        .args(["run", "--config"])
        .arg(&agent_config.path)
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "200000")
        .stderr(std::fs::File::create(net.path().join("agent-sd.log")).unwrap())
        .spawn()
        .unwrap();
    wait_for(&sock, &["READY=1", "WATCHDOG=1"], &mut agent);
    for mut c in [hub, agent] {
        let _ = c.kill();
        let _ = c.wait();
    }
}
