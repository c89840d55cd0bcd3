//! Time, injected. Deadlines, escalation and receipts take their "now" from
//! a [`Clock`], so tests can run weeks of deadlines in milliseconds with a
//! [`ManualClock`] while daemons use the [`SystemClock`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;

/// Where "now" comes from.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> OffsetDateTime;

    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64 {
        (self.now().unix_timestamp_nanos() / 1_000_000) as i64
    }
}

/// The machine's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that moves only when told to (tests).
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<OffsetDateTime>>,
}

impl ManualClock {
    pub fn new(start: OffsetDateTime) -> Self {
        ManualClock {
            now: Arc::new(Mutex::new(start)),
        }
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        *now += by;
    }

    pub fn set(&self, to: OffsetDateTime) {
        *self.now.lock().unwrap_or_else(|p| p.into_inner()) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The machine's clock, set wrong by a fixed amount (tests of a unit whose
/// clock is off; `ahead` false means behind).
#[derive(Debug, Clone, Copy)]
pub struct SkewedClock {
    pub by: Duration,
    pub ahead: bool,
}

impl Clock for SkewedClock {
    fn now(&self) -> OffsetDateTime {
        let now = OffsetDateTime::now_utc();
        if self.ahead {
            now + self.by
        } else {
            now - self.by
        }
    }
}

/// The clock daemons use unless told otherwise.
pub fn system() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let start = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let c = ManualClock::new(start);
        assert_eq!(c.now(), start);
        c.advance(Duration::from_secs(3 * 86_400));
        assert_eq!(c.now_ms(), (1_700_000_000 + 3 * 86_400) * 1000);
    }
}
