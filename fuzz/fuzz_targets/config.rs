//! hub.toml and agent.toml: strict parsing of an operator's file.
#![no_main]
use gongwen_common::config::{AgentConfig, HubConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let path = std::path::Path::new("/etc/gongwen/x.toml");
        let _ = HubConfig::from_toml(path, text);
        let _ = AgentConfig::from_toml(path, text);
    }
});
