//! Crash points for the fault tests. With `GONGWEN_FAILPOINT=<name>` in
//! its environment a program aborts — like a power cut: no destructors, no
//! flushing — the first time it reaches the point of that name, so a test
//! can crash the hub or an agent at an exact, otherwise rare moment (after
//! the spool is written but before it is synced, mid-delivery, …) and
//! check that nothing is lost or doubled after a restart. Unset, as always
//! in service, a point costs one read of a cached value.

use std::sync::OnceLock;

/// Abort here if this point is armed.
pub fn hit(name: &str) {
    static ARMED: OnceLock<Option<String>> = OnceLock::new();
    let armed = ARMED.get_or_init(|| std::env::var("GONGWEN_FAILPOINT").ok());
    if armed.as_deref() == Some(name) {
        eprintln!("failpoint {name}: aborting");
        std::process::abort();
    }
}
