//! The sealed document header: what a recipient and the hub parse from a
//! sender (and the hub from its own store).
#![no_main]
use gongwen_common::envelope::{Header, SealedHeader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(sealed) = SealedHeader::parse(data) {
        let _ = sealed.meta().validate();
        let _ = sealed.verify(None, time::OffsetDateTime::UNIX_EPOCH);
    }
    let _ = Header::decode(data);
});
