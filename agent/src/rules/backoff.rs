//! The reconnect schedule: exponential, capped, with jitter so that 194
//! agents do not all knock on a restarted hub in the same millisecond.

use std::time::Duration;

/// Delays between connection attempts.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub const DEFAULT_MIN: Duration = Duration::from_millis(200);
    pub const DEFAULT_MAX: Duration = Duration::from_secs(30);

    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max: max.max(min),
            failures: 0,
        }
    }

    /// The delay before the next attempt; `jitter` in `[0, 1)` picks a point
    /// in the upper half of the window, so the delay never collapses to 0.
    pub fn next_delay(&mut self, jitter: f64) -> Duration {
        let exp = self.min.saturating_mul(1u32 << self.failures.min(20));
        let window = exp.min(self.max);
        self.failures = self.failures.saturating_add(1);
        window.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }

    /// Start over after a successful connection.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(Self::DEFAULT_MIN, Self::DEFAULT_MAX)
    }
}

/// The least and most time to wait after the hub turned a connection
/// away before its handshake (full, or too many handshakes at once after a
/// restart). QUIC's stateless refusal carries no words, so this is what
/// the refusal means: come back at a random moment of this window, which
/// spreads the units turned away together over it.
pub const TURNED_AWAY: (Duration, Duration) = (Duration::from_secs(2), Duration::from_secs(30));

/// When to knock again, from what the last errors said. The backoff gives
/// the base delay; this stretches it where the error says more:
/// - a certificate problem: at least 5 s (knocking will not fix it);
/// - the hub said it is shutting down: at least 1 s, and until we are
///   connected again its refusals are the restart, not a full hub;
/// - turned away before the handshake: the first time at least 1 s (a hub
///   stopping or starting refuses for a moment); again, a random moment of
///   [`TURNED_AWAY`] (the hub is full: spread the units it turned away).
#[derive(Debug, Default)]
pub struct Knock {
    turned_away: u32,
    restarting: bool,
}

impl Knock {
    /// The wait after `error`, the backoff's delay being `delay` and
    /// `jitter` in `[0, 1)`.
    pub fn after(
        &mut self,
        error: &crate::rules::link_error::LinkError,
        delay: Duration,
        jitter: f64,
    ) -> Duration {
        use crate::rules::link_error::LinkError;
        let second = Duration::from_secs(1);
        if *error != LinkError::HubTurnedAway {
            self.turned_away = 0;
        }
        match error {
            e if e.needs_administrator() => delay.max(Duration::from_secs(5)),
            LinkError::HubShuttingDown => {
                self.restarting = true;
                delay.max(second)
            }
            LinkError::HubTurnedAway => {
                self.turned_away += 1;
                if self.restarting || self.turned_away == 1 {
                    return delay.max(second);
                }
                let (least, most) = TURNED_AWAY;
                let spread = least + (most - least).mul_f64(jitter.clamp(0.0, 1.0));
                spread.max(delay)
            }
            _ => delay,
        }
    }

    /// Connected and welcomed: start over.
    pub fn connected(&mut self) {
        *self = Knock::default();
    }
}

/// A jitter value in `[0, 1)` from the system's random source.
pub fn random_jitter() -> f64 {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut b = [0u8; 4];
    match SystemRandom::new().fill(&mut b) {
        Ok(()) => f64::from(u32::from_be_bytes(b)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_turned_away_come_back_spread_over_the_window() {
        use crate::rules::link_error::LinkError;
        let away = LinkError::HubTurnedAway;
        let (least, most) = TURNED_AWAY;
        let second = Duration::from_secs(1);
        // Once: a hub stopping or starting; a second.
        let mut k = Knock::default();
        assert_eq!(k.after(&away, Duration::from_millis(200), 0.9), second);
        // Again: the window.
        assert_eq!(k.after(&away, Duration::ZERO, 0.0), least);
        assert!(k.after(&away, Duration::ZERO, 0.999) <= most);
        assert!(k.after(&away, Duration::ZERO, 0.999) > most - Duration::from_millis(100));
        assert_eq!(
            k.after(&away, Duration::from_secs(60), 0.0),
            Duration::from_secs(60)
        );
        // A thousand units turned away twice: no second of the window gets
        // more than a few times its share.
        let mut per_second = [0u32; 30];
        for i in 0..1000 {
            let mut k = Knock::default();
            k.after(&away, Duration::ZERO, 0.5);
            let d = k.after(&away, Duration::ZERO, f64::from(i) / 1000.0);
            per_second[d.as_secs() as usize] += 1;
        }
        assert!(per_second.iter().all(|&n| n <= 36), "{per_second:?}");
        // After the hub said it is shutting down, its refusals are the
        // restart: a second each, until connected again.
        let mut k = Knock::default();
        assert_eq!(
            k.after(&LinkError::HubShuttingDown, Duration::ZERO, 0.5),
            second
        );
        for _ in 0..5 {
            assert_eq!(k.after(&away, Duration::ZERO, 0.5), second);
        }
        k.connected();
        k.after(&away, Duration::ZERO, 0.5);
        assert_eq!(k.after(&away, Duration::ZERO, 0.0), least);
        // Another error in between starts the count over; a certificate
        // problem waits at least 5 s.
        let mut k = Knock::default();
        k.after(&away, Duration::ZERO, 0.5);
        k.after(&LinkError::Lost("x".into()), Duration::ZERO, 0.5);
        assert_eq!(k.after(&away, Duration::ZERO, 0.5), second);
        assert_eq!(
            k.after(&LinkError::Revoked, Duration::ZERO, 0.5),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn delays_double_until_the_cap() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let d: Vec<_> = (0..6).map(|_| b.next_delay(1.0 - f64::EPSILON)).collect();
        assert!(d[0] <= Duration::from_millis(100) && d[0] >= Duration::from_millis(99));
        assert!(d[1] > d[0] && d[2] > d[1] && d[3] > d[2]);
        assert!(d[4] <= Duration::from_secs(1) && d[5] <= Duration::from_secs(1));
    }

    #[test]
    fn jitter_stays_in_the_upper_half_and_reset_starts_over() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
        assert_eq!(b.next_delay(0.0), Duration::from_millis(50));
        b.next_delay(0.0);
        b.reset();
        assert_eq!(b.next_delay(0.0), Duration::from_millis(50));
        for _ in 0..100 {
            let j = random_jitter();
            assert!((0.0..1.0).contains(&j));
        }
    }
}
