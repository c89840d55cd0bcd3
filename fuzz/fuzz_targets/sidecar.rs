//! The clerk's `.meta.toml` sidecar: free text from the outbox.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = gongwen_agent::draft::parse_sidecar("通知.pdf.meta.toml", text);
    }
});
