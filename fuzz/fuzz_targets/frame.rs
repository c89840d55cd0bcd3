//! The wire frame decoder: any bytes a peer sends. It must return a
//! message, ask for more, or refuse — never panic, never allocate by a
//! length it has not checked.
#![no_main]
use gongwen_common::wire;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((msg, used))) = wire::decode(data) {
        assert!(used <= data.len());
        // What decodes re-encodes to a frame that decodes the same.
        let frame = wire::to_frame(&msg);
        let again = wire::decode(&frame).ok().flatten().map(|(m, _)| m);
        assert_eq!(again.as_ref(), Some(&msg));
    }
    let _ = wire::decode_body(data);
});
