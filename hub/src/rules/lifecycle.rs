//! One recipient's copy of a document, from queued to closed: the rules
//! every store backend applies. Pure: a record and `now` in, the changed
//! record and what happened out; the backends only load and save.
//!
//! ```text
//!   queued ──delivered──▶ delivered ──signed for──▶ acknowledged
//!     │    ──quarantined─▶ quarantined          ──returned───▶ rejected
//!     │                        │
//!     └────────recall──────────┴──▶ recalled      (answered copies stay answered)
//! ```
//!
//! Alongside the state: how often it was urged, how far up the escalation
//! ladder it climbed, and every step that ran.

use gongwen_common::config::{EscalationAction, EscalationStep};
use gongwen_common::envelope::Urgency;
use gongwen_common::links::Decision;
use serde::{Deserialize, Serialize};

pub use gongwen_common::supervision::{DeliveryState, ReplyState};

/// One escalation step that ran.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StepRun {
    pub step: u32,
    pub action: String,
    pub at_ms: i64,
}

/// The step number recorded for an urge by the sender (not a ladder step).
pub const SENDER_URGE: u32 = u32::MAX;

/// Marks a ladder entry of the answer phase: after a copy of a document
/// that asked for an answer is signed for, the `[[escalation]]` ladder runs
/// again against its `reply_by`, until the answer comes. (It fits both
/// stores' step columns.)
pub const REPLY_PHASE: u32 = 1 << 30;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub state: DeliveryState,
    pub delivered_ms: Option<i64>,
    /// Why it was quarantined.
    pub reason: Option<String>,
    #[serde(default)]
    pub deadline_ms: i64,
    #[serde(default)]
    pub acknowledged_ms: Option<i64>,
    #[serde(default)]
    pub acknowledged_by: Option<String>,
    #[serde(default)]
    pub rejected_ms: Option<i64>,
    #[serde(default)]
    pub rejected_reason: Option<String>,
    #[serde(default)]
    pub recalled_ms: Option<i64>,
    /// Signed for or returned after the deadline.
    #[serde(default)]
    pub late: bool,
    #[serde(default)]
    pub urge_count: u32,
    /// How many escalation steps have run.
    #[serde(default)]
    pub escalation_level: u32,
    #[serde(default)]
    pub steps_run: Vec<StepRun>,
    /// The recipient's answer, for a document that asked for one.
    #[serde(default, skip_serializing_if = "ReplyRecord::is_empty")]
    pub reply: ReplyRecord,
}

/// A recipient's answer (批复, 上报) to a document that asked for one.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReplyRecord {
    /// When the hub accepted the (latest) answer.
    #[serde(default)]
    pub answered_ms: Option<i64>,
    /// The answer's document id.
    #[serde(default)]
    pub answer_doc: Option<String>,
    #[serde(default)]
    pub decision: Option<Decision>,
    /// The first answer came after `reply_by`.
    #[serde(default)]
    pub late: bool,
    /// Ladder steps run for the missing answer (each once).
    #[serde(default)]
    pub escalation_level: u32,
    #[serde(default)]
    pub steps_run: Vec<StepRun>,
}

impl ReplyRecord {
    /// Nothing to keep (the record is left out of the stored JSON).
    pub fn is_empty(&self) -> bool {
        *self == ReplyRecord::default()
    }
}

/// A clerk's answer to a delivered document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer<'a> {
    /// 签收, by the named person.
    SignedFor { by: &'a str },
    /// 退回, for the reason given.
    Returned { reason: &'a str },
}

/// Why a clerk's answer (acknowledged / rejected) was not recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error("the document was recalled by its sender")]
    Recalled,
    #[error("the document was already {0}")]
    AlreadyAnswered(&'static str),
    /// Not yet: the unit's delivery receipt may still be on its way.
    #[error("the document has not been delivered to this unit")]
    NotDelivered,
    #[error("this unit quarantined the document; it cannot be answered")]
    Quarantined,
}

/// What a recall did to one recipient's copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recall {
    /// Still queued at the hub: withdrawn there, the unit never sees it.
    Withdrawn,
    /// The unit holds it: it must be told (a recall notice).
    Notify,
    /// Signed for or returned before the recall: unchanged.
    AlreadyAnswered,
    /// Recalled before: unchanged.
    AlreadyRecalled,
}

/// An escalation step that ran, and when the next one is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Escalated {
    pub action: EscalationAction,
    pub next_due_ms: Option<i64>,
}

impl DeliveryRecord {
    /// A copy waiting at the hub for its recipient.
    pub fn queued(deadline_ms: i64) -> Self {
        DeliveryRecord {
            state: DeliveryState::Queued,
            delivered_ms: None,
            reason: None,
            deadline_ms,
            acknowledged_ms: None,
            acknowledged_by: None,
            rejected_ms: None,
            rejected_reason: None,
            recalled_ms: None,
            late: false,
            urge_count: 0,
            escalation_level: 0,
            steps_run: Vec::new(),
            reply: ReplyRecord::default(),
        }
    }

    /// The recipient's answer document `answer_doc` was accepted at
    /// `at_ms`; `reply_by_ms` is when it was due. A later answer (a
    /// correction) replaces the decision and keeps whether the first came
    /// late. True when the record changed.
    pub fn take_reply(
        &mut self,
        answer_doc: &str,
        decision: Option<Decision>,
        at_ms: i64,
        reply_by_ms: Option<i64>,
    ) -> bool {
        if self.reply.answer_doc.as_deref() == Some(answer_doc) {
            return false;
        }
        if self.reply.answered_ms.is_none() {
            self.reply.late = reply_by_ms.is_some_and(|by| at_ms > by);
        }
        self.reply.answered_ms = Some(at_ms);
        self.reply.answer_doc = Some(answer_doc.to_owned());
        self.reply.decision = decision;
        true
    }

    /// Where this recipient stands with the answer asked of it at
    /// `now_ms` (`None` when the document asked for none, or the copy was
    /// recalled or returned: a returned question needs no answer).
    pub fn reply_state(
        &self,
        asked: bool,
        reply_by_ms: Option<i64>,
        now_ms: i64,
    ) -> Option<ReplyState> {
        if !asked
            || matches!(
                self.state,
                DeliveryState::Recalled | DeliveryState::Rejected
            )
        {
            return None;
        }
        Some(match self.reply.answered_ms {
            Some(_) if self.reply.late => ReplyState::Late,
            Some(_) => ReplyState::Answered,
            None if reply_by_ms.is_some_and(|by| now_ms > by) => ReplyState::Late,
            None => ReplyState::Awaiting,
        })
    }

    /// The recipient's `delivered` receipt (or `quarantined`, with its
    /// reason) arrived at `now_ms`. True when this is news; a repeat, or a
    /// receipt for a copy recalled meanwhile, changes nothing.
    pub fn arrive(&mut self, quarantined: Option<&str>, now_ms: i64) -> bool {
        if self.state != DeliveryState::Queued {
            return false;
        }
        self.state = match quarantined {
            None => DeliveryState::Delivered,
            Some(_) => DeliveryState::Quarantined,
        };
        self.delivered_ms = Some(now_ms);
        self.reason = quarantined.map(str::to_owned);
        true
    }

    /// A clerk signed for or returned the copy. `Ok(true)` when recorded,
    /// `Ok(false)` for the same answer again. Late is judged by the hub's
    /// clock when the answer arrives (a unit's own clock may be off).
    pub fn answer(&mut self, answer: Answer<'_>, now_ms: i64) -> Result<bool, AnswerError> {
        match (self.state, answer) {
            (DeliveryState::Recalled, _) => Err(AnswerError::Recalled),
            (DeliveryState::Acknowledged, Answer::SignedFor { .. })
            | (DeliveryState::Rejected, Answer::Returned { .. }) => Ok(false),
            (DeliveryState::Acknowledged, _) => Err(AnswerError::AlreadyAnswered("acknowledged")),
            (DeliveryState::Rejected, _) => Err(AnswerError::AlreadyAnswered("rejected")),
            (DeliveryState::Queued, _) => Err(AnswerError::NotDelivered),
            (DeliveryState::Quarantined, _) => Err(AnswerError::Quarantined),
            (DeliveryState::Delivered, answer) => {
                self.late = now_ms > self.deadline_ms;
                match answer {
                    Answer::SignedFor { by } => {
                        self.state = DeliveryState::Acknowledged;
                        self.acknowledged_ms = Some(now_ms);
                        self.acknowledged_by = Some(by.to_owned());
                    }
                    Answer::Returned { reason } => {
                        self.state = DeliveryState::Rejected;
                        self.rejected_ms = Some(now_ms);
                        self.rejected_reason = Some(reason.to_owned());
                    }
                }
                Ok(true)
            }
        }
    }

    /// The sender withdraws the document (撤回).
    pub fn recall(&mut self, now_ms: i64) -> Recall {
        let outcome = match self.state {
            DeliveryState::Acknowledged | DeliveryState::Rejected => {
                return Recall::AlreadyAnswered;
            }
            DeliveryState::Recalled => return Recall::AlreadyRecalled,
            DeliveryState::Queued => Recall::Withdrawn,
            DeliveryState::Delivered | DeliveryState::Quarantined => Recall::Notify,
        };
        self.state = DeliveryState::Recalled;
        self.recalled_ms = Some(now_ms);
        outcome
    }

    /// Run ladder step `step` at `now_ms` if it is this copy's next and
    /// the copy is still open: each step runs once, in order, and none
    /// after the copy was answered or withdrawn.
    pub fn escalate(
        &mut self,
        step: u32,
        steps: &[EscalationStep],
        now_ms: i64,
    ) -> Option<Escalated> {
        if self.state.is_closed() || self.escalation_level != step {
            return None;
        }
        let s = steps.get(step as usize)?;
        self.escalation_level += 1;
        let action = match s.action {
            EscalationAction::Urge => {
                self.urge_count += 1;
                "urge"
            }
            EscalationAction::Supervise => "supervise",
        };
        self.steps_run.push(StepRun {
            step,
            action: action.into(),
            at_ms: now_ms,
        });
        Some(Escalated {
            action: s.action,
            next_due_ms: crate::rules::escalation::next_due_ms(
                self.deadline_ms,
                self.escalation_level as usize,
                steps,
            ),
        })
    }

    /// Run a ladder entry: a sign-for step, or (with [`REPLY_PHASE`]) a
    /// step for a missing answer due at `reply_by_ms`. What it did and the
    /// entry to put back for the next step.
    pub fn escalate_entry(
        &mut self,
        entry: u32,
        steps: &[EscalationStep],
        now_ms: i64,
        reply_by_ms: Option<i64>,
    ) -> Option<(Escalated, u32)> {
        if entry & REPLY_PHASE == 0 {
            let e = self.escalate(entry, steps, now_ms)?;
            return Some((e, self.escalation_level));
        }
        let step = entry & !REPLY_PHASE;
        let reply_by = reply_by_ms?;
        // Answered, returned or withdrawn, or this step already ran.
        if self.reply.answered_ms.is_some()
            || matches!(
                self.state,
                DeliveryState::Rejected | DeliveryState::Recalled
            )
            || self.reply.escalation_level != step
        {
            return None;
        }
        let s = steps.get(step as usize)?;
        self.reply.escalation_level += 1;
        let action = match s.action {
            EscalationAction::Urge => {
                self.urge_count += 1;
                "urge (answer)"
            }
            EscalationAction::Supervise => "supervise (answer)",
        };
        self.reply.steps_run.push(StepRun {
            step,
            action: action.into(),
            at_ms: now_ms,
        });
        Some((
            Escalated {
                action: s.action,
                next_due_ms: crate::rules::escalation::next_due_ms(
                    reply_by,
                    self.reply.escalation_level as usize,
                    steps,
                ),
            },
            REPLY_PHASE | self.reply.escalation_level,
        ))
    }

    /// The sender urges (催办) now. False for a closed copy. The ladder is
    /// not moved.
    pub fn urge_by_sender(&mut self, now_ms: i64) -> bool {
        if self.state.is_closed() {
            return false;
        }
        self.urge_count += 1;
        self.steps_run.push(StepRun {
            step: SENDER_URGE,
            action: "urge (by the sender)".into(),
            at_ms: now_ms,
        });
        true
    }
}

/// Whether the hub may let go of a document's content: no copy is still
/// waiting to be delivered (recalled copies are not).
pub fn content_done<'a>(records: impl IntoIterator<Item = &'a DeliveryRecord>) -> bool {
    records
        .into_iter()
        .all(|r| r.state != DeliveryState::Queued)
}

/// The order documents are delivered to one unit in: 特急 first, then
/// 加急, then 平件; within each, oldest first (the doc id, which is
/// time-ordered). Smaller goes first.
pub fn delivery_rank(urgency: Urgency) -> u8 {
    match urgency {
        Urgency::ExtraUrgent => 0,
        Urgency::Urgent => 1,
        Urgency::Normal => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gongwen_common::NodeId;
    use std::time::Duration;

    const H: i64 = 3_600_000;

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

    #[test]
    fn a_missing_answer_climbs_the_ladder_once_per_step_until_it_comes() {
        let steps = vec![
            EscalationStep {
                after: std::time::Duration::ZERO,
                action: EscalationAction::Urge,
                notify: vec![],
            },
            EscalationStep {
                after: std::time::Duration::from_secs(7200),
                action: EscalationAction::Supervise,
                notify: vec![],
            },
        ];
        let by = 100_000;
        let mut r = delivered(5_000);
        r.state = DeliveryState::Acknowledged;
        let (e, next) = r.escalate_entry(REPLY_PHASE, &steps, by, Some(by)).unwrap();
        assert_eq!(e.action, EscalationAction::Urge);
        assert_eq!(next, REPLY_PHASE | 1);
        assert_eq!(e.next_due_ms, Some(by + 7_200_000));
        // The same step again: nothing.
        assert!(
            r.escalate_entry(REPLY_PHASE, &steps, by, Some(by))
                .is_none()
        );
        // What the store keeps and reads back (the step count too).
        let mut r: DeliveryRecord =
            serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        let (e, _) = r
            .escalate_entry(next, &steps, by + 7_200_000, Some(by))
            .unwrap();
        assert_eq!(
            (e.action, e.next_due_ms),
            (EscalationAction::Supervise, None)
        );
        assert_eq!(r.urge_count, 1);
        // Answered: the ladder stops.
        let mut answered = delivered(5_000);
        answered.state = DeliveryState::Acknowledged;
        answered.take_reply("a", None, by - 1, Some(by));
        assert!(
            answered
                .escalate_entry(REPLY_PHASE, &steps, by, Some(by))
                .is_none()
        );
        // A sign-for entry of a signed-for copy does nothing either.
        assert!(answered.escalate_entry(0, &steps, by, Some(by)).is_none());
    }

    #[test]
    fn an_answer_on_time_late_or_missing_has_its_state() {
        let by = Some(10_000);
        let mut r = delivered(5_000);
        assert_eq!(r.reply_state(false, by, 0), None);
        assert_eq!(r.reply_state(true, by, 9_000), Some(ReplyState::Awaiting));
        assert_eq!(r.reply_state(true, by, 11_000), Some(ReplyState::Late));
        assert!(r.take_reply("a1", Some(Decision::Approved), 9_500, by));
        assert_eq!(r.reply_state(true, by, 20_000), Some(ReplyState::Answered));
        assert!(
            !r.take_reply("a1", Some(Decision::Approved), 9_600, by),
            "a repeat"
        );
        // A correction after the deadline keeps the first answer's timeliness.
        assert!(r.take_reply("a2", Some(Decision::Revise), 30_000, by));
        assert_eq!(r.reply.decision, Some(Decision::Revise));
        assert_eq!(r.reply_state(true, by, 30_000), Some(ReplyState::Answered));
        let mut late = delivered(5_000);
        assert!(late.take_reply("b1", None, 12_000, by));
        assert_eq!(late.reply_state(true, by, 12_000), Some(ReplyState::Late));
        // No reply_by: never late.
        let open = delivered(5_000);
        assert_eq!(
            open.reply_state(true, None, i64::MAX),
            Some(ReplyState::Awaiting)
        );
    }

    fn delivered(deadline: i64) -> DeliveryRecord {
        let mut r = DeliveryRecord::queued(deadline);
        assert!(r.arrive(None, 5));
        r
    }

    #[test]
    fn a_delivery_receipt_counts_once() {
        let mut r = DeliveryRecord::queued(10 * H);
        assert!(r.arrive(None, 7));
        assert_eq!(
            (r.state, r.delivered_ms),
            (DeliveryState::Delivered, Some(7))
        );
        assert!(!r.arrive(None, 9), "a repeat is no news");
        assert!(!r.arrive(Some("virus"), 9), "nor a later quarantine");
        assert_eq!(r.delivered_ms, Some(7));
    }

    #[test]
    fn a_quarantined_copy_keeps_its_reason_and_cannot_be_signed_for() {
        let mut r = DeliveryRecord::queued(10 * H);
        assert!(r.arrive(Some("the content does not decrypt"), 3));
        assert_eq!(r.state, DeliveryState::Quarantined);
        assert_eq!(r.reason.as_deref(), Some("the content does not decrypt"));
        assert_eq!(
            r.answer(Answer::SignedFor { by: "王" }, 4),
            Err(AnswerError::Quarantined)
        );
    }

    #[test]
    fn signing_for_records_who_and_whether_it_was_late() {
        let mut r = delivered(10 * H);
        assert_eq!(
            r.answer(Answer::SignedFor { by: "王秘书" }, 9 * H),
            Ok(true)
        );
        assert_eq!(r.state, DeliveryState::Acknowledged);
        assert_eq!(r.acknowledged_by.as_deref(), Some("王秘书"));
        assert!(!r.late);
        assert_eq!(
            r.answer(Answer::SignedFor { by: "王秘书" }, 11 * H),
            Ok(false),
            "the same answer twice changes nothing"
        );
        assert_eq!(r.acknowledged_ms, Some(9 * H));
        assert_eq!(
            r.answer(Answer::Returned { reason: "错发" }, 11 * H),
            Err(AnswerError::AlreadyAnswered("acknowledged"))
        );

        let mut late = delivered(10 * H);
        assert_eq!(
            late.answer(Answer::Returned { reason: "错发" }, 10 * H + 1),
            Ok(true)
        );
        assert!(late.late);
        assert_eq!(late.rejected_reason.as_deref(), Some("错发"));
    }

    #[test]
    fn nothing_can_be_answered_before_it_arrived() {
        let mut r = DeliveryRecord::queued(H);
        assert_eq!(
            r.answer(Answer::SignedFor { by: "王" }, 1),
            Err(AnswerError::NotDelivered)
        );
        assert_eq!(r.state, DeliveryState::Queued);
    }

    #[test]
    fn a_recall_withdraws_queued_copies_notifies_holders_and_spares_answers() {
        let mut queued = DeliveryRecord::queued(H);
        assert_eq!(queued.recall(8), Recall::Withdrawn);
        assert_eq!(
            (queued.state, queued.recalled_ms),
            (DeliveryState::Recalled, Some(8))
        );
        assert_eq!(queued.recall(9), Recall::AlreadyRecalled);
        assert_eq!(queued.recalled_ms, Some(8));
        assert!(
            !queued.arrive(None, 10),
            "a late delivery receipt does not reopen it"
        );

        let mut held = delivered(H);
        assert_eq!(held.recall(8), Recall::Notify);
        assert_eq!(
            held.answer(Answer::SignedFor { by: "王" }, 9),
            Err(AnswerError::Recalled)
        );

        let mut answered = delivered(H);
        answered.answer(Answer::SignedFor { by: "王" }, 6).unwrap();
        assert_eq!(answered.recall(8), Recall::AlreadyAnswered);
        assert_eq!(answered.state, DeliveryState::Acknowledged);
    }

    #[test]
    fn each_ladder_step_runs_once_in_order_and_none_after_an_answer() {
        let steps = ladder();
        let mut r = delivered(10 * H);
        assert_eq!(r.escalate(1, &steps, 10 * H), None, "not before step 0");
        let first = r.escalate(0, &steps, 10 * H).unwrap();
        assert_eq!(first.action, EscalationAction::Urge);
        assert_eq!(first.next_due_ms, Some(12 * H));
        assert_eq!((r.urge_count, r.escalation_level), (1, 1));
        assert_eq!(
            r.escalate(0, &steps, 10 * H + 1),
            None,
            "step 0 ran already"
        );
        let second = r.escalate(1, &steps, 12 * H).unwrap();
        assert_eq!(second.action, EscalationAction::Supervise);
        assert_eq!(second.next_due_ms, None);
        assert_eq!(r.urge_count, 1, "supervising is not urging");
        assert_eq!(r.escalate(2, &steps, 13 * H), None, "no step 2");
        assert_eq!(
            r.steps_run.iter().map(|s| s.step).collect::<Vec<_>>(),
            [0, 1]
        );

        let mut answered = delivered(10 * H);
        answered
            .answer(Answer::SignedFor { by: "王" }, 9 * H)
            .unwrap();
        assert_eq!(answered.escalate(0, &steps, 10 * H), None);
    }

    #[test]
    fn the_sender_may_urge_open_copies_without_moving_the_ladder() {
        let mut r = DeliveryRecord::queued(H);
        assert!(r.urge_by_sender(3));
        assert!(r.urge_by_sender(4));
        assert_eq!((r.urge_count, r.escalation_level), (2, 0));
        assert_eq!(r.steps_run[0].step, SENDER_URGE);
        r.recall(5);
        assert!(!r.urge_by_sender(6));
        assert_eq!(r.urge_count, 2);
    }

    #[test]
    fn content_is_kept_while_any_copy_waits() {
        let mut a = DeliveryRecord::queued(H);
        let b = DeliveryRecord::queued(H);
        assert!(!content_done([&a, &b]));
        a.arrive(None, 1);
        assert!(!content_done([&a, &b]));
        let mut b = b;
        b.recall(2);
        assert!(content_done([&a, &b]), "a withdrawn copy is not waited for");
    }

    #[test]
    fn extra_urgent_goes_before_urgent_before_normal() {
        let mut u = [Urgency::Normal, Urgency::ExtraUrgent, Urgency::Urgent];
        u.sort_by_key(|u| delivery_rank(*u));
        assert_eq!(u, [Urgency::ExtraUrgent, Urgency::Urgent, Urgency::Normal]);
    }
}
