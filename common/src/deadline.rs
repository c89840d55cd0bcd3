//! When recipients must have signed for a document, as its sender sets it
//! in the signed header.

/// When recipients must have signed for a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    /// A moment (Unix seconds): the same instant on every clock.
    At(i64),
    /// A span (seconds) after the hub accepts the document. The hub turns
    /// it into a moment by its own clock, so a sender whose clock is off
    /// cannot move its recipients' deadline.
    Within(u64),
}

impl Deadline {
    /// The moment (Unix seconds), given when the hub accepted the document.
    pub fn resolve(self, accepted_ms: i64) -> i64 {
        match self {
            Deadline::At(s) => s,
            Deadline::Within(d) => accepted_ms
                .div_euclid(1000)
                .saturating_add(i64::try_from(d).unwrap_or(i64::MAX)),
        }
    }

    /// The moment, if it does not depend on the hub's acceptance.
    pub fn at(self) -> Option<i64> {
        match self {
            Deadline::At(s) => Some(s),
            Deadline::Within(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_counts_from_the_hubs_acceptance_and_a_moment_is_itself() {
        let accepted_ms = 1_700_000_000_999;
        assert_eq!(Deadline::At(5).resolve(accepted_ms), 5);
        assert_eq!(Deadline::Within(60).resolve(accepted_ms), 1_700_000_060);
        assert_eq!(Deadline::Within(u64::MAX).resolve(accepted_ms), i64::MAX);
        assert_eq!(Deadline::At(5).at(), Some(5));
        assert_eq!(Deadline::Within(5).at(), None);
    }
}
