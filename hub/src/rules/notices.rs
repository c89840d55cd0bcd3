//! The notices the escalation ladder and a sender's urging send: 催办 to
//! the late unit, 督办 to the supervision office. Plain functions over the
//! records.

use gongwen_common::NodeId;
use gongwen_common::config::EscalationAction;
use gongwen_common::notice::{Notice, NoticeKind};

use crate::rules::lifecycle::{DeliveryRecord, REPLY_PHASE};
use crate::rules::records::DocRecord;
use crate::rules::supervision::time_ms;

/// The urging notice (催办) a recipient gets, from the ladder or its sender.
pub fn urge_notice(
    doc: &DocRecord,
    recipient: &NodeId,
    rec: &DeliveryRecord,
    now_ms: i64,
) -> Notice {
    step_notice(NoticeKind::Urge, doc, recipient, rec, now_ms)
}

/// A notice about one recipient's copy of `doc` at `now_ms`.
fn step_notice(
    kind: NoticeKind,
    doc: &DocRecord,
    recipient: &NodeId,
    rec: &DeliveryRecord,
    now_ms: i64,
) -> Notice {
    Notice {
        kind,
        doc_id: doc.doc_id,
        sender: doc.sender.clone(),
        title: doc.title.clone(),
        doc_number: doc.doc_number.clone(),
        recipient: recipient.clone(),
        deadline: time_ms(rec.deadline_ms),
        late_seconds: (now_ms - rec.deadline_ms).max(0) / 1000,
        urge_count: rec.urge_count,
        escalation_level: rec.escalation_level,
        at: time_ms(now_ms).unwrap_or_default(),
        reason: String::new(),
        pressed_by: None,
    }
}

/// The notices one step of the ladder sends, each with its addressee.
pub fn ladder_notices(
    steps: &[gongwen_common::config::EscalationStep],
    doc: &DocRecord,
    recipient: &NodeId,
    rec: &DeliveryRecord,
    entry: u32,
    now_ms: i64,
) -> Vec<(NodeId, Vec<u8>)> {
    let answer_phase = entry & REPLY_PHASE != 0;
    let Some(s) = steps.get((entry & !REPLY_PHASE) as usize) else {
        return Vec::new();
    };
    let notice = |kind| {
        let mut n = step_notice(kind, doc, recipient, rec, now_ms);
        if answer_phase && let Some(by) = doc.links.reply_by_ms {
            // About the answer asked for, due at reply_by.
            n.deadline = time_ms(by);
            n.late_seconds = (now_ms - by).max(0) / 1000;
            n.reason = "未按期答复（报送）".into();
        }
        n.to_bytes()
    };
    match s.action {
        EscalationAction::Urge => vec![(recipient.clone(), notice(NoticeKind::Urge))],
        EscalationAction::Supervise => s
            .notify
            .iter()
            .map(|n| (n.clone(), notice(NoticeKind::Supervise)))
            .collect(),
    }
}
