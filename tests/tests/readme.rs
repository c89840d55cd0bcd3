//! The README's configuration examples are real: each parses with the
//! loaders the daemons use.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use gongwen_common::config::{AgentConfig, HubConfig};

fn toml_blocks() -> Vec<String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    readme
        .split("```toml")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_readme_hub_and_agent_examples_load() {
    let blocks = toml_blocks();
    let hub: Vec<_> = blocks.iter().filter(|b| b.contains("# hub.toml")).collect();
    let agent: Vec<_> = blocks
        .iter()
        .filter(|b| b.contains("# agent.toml"))
        .collect();
    assert_eq!(
        (hub.len(), agent.len()),
        (1, 1),
        "expected one example of each"
    );
    let h = HubConfig::from_toml(Path::new("hub.toml"), hub[0]).unwrap();
    assert!(!h.escalation.is_empty());
    let a = AgentConfig::from_toml(Path::new("agent.toml"), agent[0]).unwrap();
    assert_eq!(a.node_id.as_str(), "harbin-gov");
}

#[test]
fn the_readme_sidecar_example_parses() {
    let blocks = toml_blocks();
    let sidecar = blocks
        .iter()
        .find(|b| b.contains("doc_number") && b.contains("main"))
        .unwrap();
    gongwen_agent::outgoing::draft::parse_sidecar("example.meta.toml", sidecar).unwrap();
}
