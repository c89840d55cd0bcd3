//! Receipts: parsed from recipients (hub) and from the hub (senders).
#![no_main]
use gongwen_common::receipt::Receipt;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Receipt::decode_stored(data);
    let _ = Receipt::verify(data, None, time::OffsetDateTime::UNIX_EPOCH);
});
