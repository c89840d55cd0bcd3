//! `log_format = "json"` (or `--log-format json`): one JSON object per
//! line, with time, level, message and the span fields (the unit as
//! `node`). A real hub process and agent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gongwen_common::Role;
use gongwen_common::config::HubConfig;
use gongwen_tests::{HubProcess, Net, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_logs_one_json_object_per_line() {
    let net = Net::new();
    net.issue("harbin-gov", Role::Node);
    let plain = net.hub_config("127.0.0.1:0".parse().unwrap());
    let text = std::fs::read_to_string(&plain.path).unwrap();
    let path = net.path().join("hub-json.toml");
    std::fs::write(&path, format!("log_format = \"json\"\n{text}")).unwrap();
    let config = HubConfig::load(&path).unwrap();
    let hub = HubProcess::start_config(&net, config, None).await;
    let _harbin = gongwen_tests::RunningAgent::start(net.agent_config("harbin-gov", hub.addr));
    hub.wait_units(1).await;
    let lines = wait_until("a log line about harbin-gov", || {
        let log = std::fs::read_to_string(&hub.log).ok()?;
        log.contains("\"node\":\"harbin-gov\"").then_some(log)
    })
    .await;
    let mut about_unit = 0;
    for line in lines.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not one JSON object ({e}): {line}"));
        assert!(v["timestamp"].is_string(), "{line}");
        assert!(v["level"].is_string(), "{line}");
        assert!(v["fields"]["message"].is_string(), "{line}");
        if v["spans"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["node"] == "harbin-gov"))
        {
            about_unit += 1;
        }
    }
    assert!(about_unit > 0, "no line carries the unit's span:\n{lines}");
}
