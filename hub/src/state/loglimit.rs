//! Warnings about what peers do, rate-limited per peer.
//!
//! A hostile peer decides how often the hub has something to warn about.
//! Each key (a unit's id, an address) may cause a few warnings a minute;
//! the rest are counted and the count is told with the next warning let
//! through, so the log stays readable and bounded while still saying how
//! much happened.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Warnings one key may cause per window.
pub const PER_WINDOW: u32 = 5;
/// The window.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Keys remembered at most (windows that ended are forgotten first).
const MAX_KEYS: usize = 4096;

/// Whether to log a warning now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Log it; `suppressed` warnings for the same key were held back
    /// before it.
    Log { suppressed: u64 },
    /// Count it, do not log it.
    Quiet,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    logged: u32,
    suppressed: u64,
}

/// The limiter's state (plain values, `now` passed in).
#[derive(Debug, Default)]
pub struct LogLimiter {
    keys: HashMap<String, Window>,
}

impl LogLimiter {
    pub fn check(&mut self, key: &str, now: Instant) -> Verdict {
        if !self.keys.contains_key(key) && self.keys.len() >= MAX_KEYS {
            self.keys
                .retain(|_, w| now.saturating_duration_since(w.started) < WINDOW);
            if self.keys.len() >= MAX_KEYS {
                self.keys.clear();
            }
        }
        let w = self.keys.entry(key.to_owned()).or_insert(Window {
            started: now,
            logged: 0,
            suppressed: 0,
        });
        if now.saturating_duration_since(w.started) >= WINDOW {
            let suppressed = w.suppressed;
            *w = Window {
                started: now,
                logged: 1,
                suppressed: 0,
            };
            return Verdict::Log { suppressed };
        }
        if w.logged < PER_WINDOW {
            w.logged += 1;
            Verdict::Log { suppressed: 0 }
        } else {
            w.suppressed += 1;
            Verdict::Quiet
        }
    }
}

/// A [`LogLimiter`] shared by the tasks that warn about peers.
#[derive(Debug, Default)]
pub struct Warnings {
    limiter: Mutex<LogLimiter>,
}

impl Warnings {
    /// Whether a warning about `key` may be logged now; if so, what to add
    /// to it (how many were held back). The caller logs, so the line keeps
    /// its own module and span:
    ///
    /// ```ignore
    /// if let Some(held_back) = warnings.allow(&addr) {
    ///     warn!("{addr}: refused during handshake: {e}{held_back}");
    /// }
    /// ```
    pub fn allow(&self, key: &str) -> Option<HeldBack> {
        let verdict = self
            .limiter
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .check(key, Instant::now());
        match verdict {
            Verdict::Log { suppressed } => Some(HeldBack(suppressed)),
            Verdict::Quiet => None,
        }
    }
}

/// How many warnings like this one were not logged; shows as nothing, or as
/// " (N similar warnings were not logged in the last minute)".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldBack(pub u64);

impl std::fmt::Display for HeldBack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            0 => Ok(()),
            n => write!(
                f,
                " ({n} similar warnings were not logged in the last minute)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_noisy_key_is_quieted_and_the_count_comes_with_the_next_window() {
        let mut l = LogLimiter::default();
        let t0 = Instant::now();
        for _ in 0..PER_WINDOW {
            assert_eq!(l.check("daqing-gov", t0), Verdict::Log { suppressed: 0 });
        }
        for _ in 0..1000 {
            assert_eq!(l.check("daqing-gov", t0), Verdict::Quiet);
        }
        // Another key is not held back by the noisy one.
        assert_eq!(l.check("harbin-gov", t0), Verdict::Log { suppressed: 0 });
        assert_eq!(
            l.check("daqing-gov", t0 + WINDOW),
            Verdict::Log { suppressed: 1000 }
        );
        assert_eq!(
            l.check("daqing-gov", t0 + WINDOW),
            Verdict::Log { suppressed: 0 }
        );
    }

    #[test]
    fn the_keys_remembered_stay_bounded() {
        let mut l = LogLimiter::default();
        let t0 = Instant::now();
        for i in 0..(MAX_KEYS * 3) {
            l.check(&format!("10.0.{}.{}", i / 256, i % 256), t0);
        }
        assert!(l.keys.len() <= MAX_KEYS);
    }
}
