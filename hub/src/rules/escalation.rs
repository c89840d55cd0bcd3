//! When to urge (催办) and when to escalate to supervision (督办). Pure:
//! values in, decisions out; the store and the timer live elsewhere.
//!
//! Every (document, recipient) that has neither acknowledged nor rejected
//! climbs the `[[escalation]]` ladder: step *i* is due at
//! `deadline + steps[i].after`. Steps run in order, each exactly once; a
//! step that fell due while the hub was down runs once when it is back.

use std::time::Duration;

use gongwen_common::config::{Deadlines, EscalationStep};
use gongwen_common::envelope::{Deadline, Urgency};

/// A recipient's acknowledgment deadline (Unix ms): the sender's explicit
/// deadline (a span counted from acceptance by this clock), or acceptance
/// time plus the hub's deadline for the urgency.
pub fn deadline_ms(
    explicit: Option<Deadline>,
    urgency: Urgency,
    deadlines: &Deadlines,
    accepted_ms: i64,
) -> i64 {
    match explicit {
        Some(d) => d.resolve(accepted_ms).saturating_mul(1000),
        None => {
            let d = match urgency {
                Urgency::Normal => deadlines.normal,
                Urgency::Urgent => deadlines.urgent,
                Urgency::ExtraUrgent => deadlines.extra_urgent,
            };
            accepted_ms.saturating_add(duration_ms(d))
        }
    }
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// When step `level` (0-based: the next one to run) is due, if any.
pub fn next_due_ms(deadline_ms: i64, level: usize, steps: &[EscalationStep]) -> Option<i64> {
    steps
        .get(level)
        .map(|s| deadline_ms.saturating_add(duration_ms(s.after)))
}

/// The steps to run now, in order, for a recipient at `level` that has not
/// answered: every remaining step whose time has come.
pub fn due_steps(
    deadline_ms: i64,
    level: usize,
    steps: &[EscalationStep],
    now_ms: i64,
) -> Vec<usize> {
    (level..steps.len())
        .take_while(|&i| next_due_ms(deadline_ms, i, steps).is_some_and(|due| due <= now_ms))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use gongwen_common::NodeId;
    use gongwen_common::config::EscalationAction;

    fn ladder() -> Vec<EscalationStep> {
        vec![
            EscalationStep {
                after: Duration::ZERO,
                action: EscalationAction::Urge,
                notify: vec![],
            },
            EscalationStep {
                after: Duration::from_secs(2 * 3600),
                action: EscalationAction::Supervise,
                notify: vec![NodeId::parse("prov-supervision").unwrap()],
            },
        ]
    }

    const H: i64 = 3_600_000;

    #[test]
    fn the_deadline_comes_from_the_sender_or_the_urgency() {
        let d = Deadlines::default();
        assert_eq!(
            deadline_ms(Some(Deadline::At(1_800_000_000)), Urgency::Normal, &d, 5),
            1_800_000_000_000
        );
        assert_eq!(
            deadline_ms(Some(Deadline::Within(3600)), Urgency::Normal, &d, 7_000),
            7_000 + H,
            "a span counts from acceptance by the hub's clock"
        );
        assert_eq!(deadline_ms(None, Urgency::Urgent, &d, 1000), 1000 + 4 * H);
        assert_eq!(deadline_ms(None, Urgency::ExtraUrgent, &d, 0), H);
        assert_eq!(deadline_ms(None, Urgency::Normal, &d, 0), 24 * H);
    }

    #[test]
    fn nothing_is_due_before_the_deadline() {
        assert!(due_steps(10 * H, 0, &ladder(), 10 * H - 1).is_empty());
    }

    #[test]
    fn urge_at_the_deadline_then_supervise_two_hours_later() {
        let l = ladder();
        assert_eq!(due_steps(10 * H, 0, &l, 10 * H), vec![0]);
        // After the urge ran (level 1), supervise waits for its own time.
        assert!(due_steps(10 * H, 1, &l, 11 * H).is_empty());
        assert_eq!(due_steps(10 * H, 1, &l, 12 * H), vec![1]);
        assert!(
            due_steps(10 * H, 2, &l, 100 * H).is_empty(),
            "each step runs once"
        );
        assert_eq!(next_due_ms(10 * H, 1, &l), Some(12 * H));
        assert_eq!(next_due_ms(10 * H, 2, &l), None);
    }

    #[test]
    fn steps_missed_while_down_each_run_once_in_order() {
        assert_eq!(due_steps(10 * H, 0, &ladder(), 50 * H), vec![0, 1]);
    }
}
