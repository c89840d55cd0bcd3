//! Runs the escalation ladder: at each due time, the store applies the
//! step (urge or supervise) with its notices in one transaction, and the
//! nodes concerned are woken to receive them.

use std::sync::Arc;
use std::time::Duration;

use gongwen_common::NodeId;
use gongwen_common::config::EscalationAction;
use gongwen_common::notice::{Notice, NoticeKind};
use tracing::{error, info};

use crate::core::Core;
use crate::lifecycle::REPLY_PHASE;
use crate::store::{DeliveryRecord, DocRecord, StoreError};
use crate::supervision::time_ms;

/// Longest wait between looks at the ladder (catches clock jumps).
const MAX_WAIT: Duration = Duration::from_secs(1);

pub(crate) async fn run(core: Arc<Core>) {
    loop {
        if let Err(e) = run_due(&core).await {
            error!("escalation: {e}");
        }
        let wait = match core.store().next_due().await {
            Ok(Some(due)) => {
                let ms = (due - core.now_ms()).clamp(0, MAX_WAIT.as_millis() as i64);
                Duration::from_millis(ms as u64)
            }
            _ => MAX_WAIT,
        };
        let _ = tokio::time::timeout(wait, core.escalation_woken()).await;
    }
}

/// Run every step due now; wake who must hear of it.
pub(crate) async fn run_due(core: &Core) -> Result<usize, StoreError> {
    let now = core.now_ms();
    let steps = core.config().escalation.clone();
    let for_notices = steps.clone();
    let ran = core
        .store()
        .run_due(
            now,
            steps,
            Arc::new(move |doc, r, rec, step| notices(&for_notices, doc, r, rec, step, now)),
        )
        .await?;
    for r in &ran {
        info!(doc = %r.doc_id, recipient = %r.recipient, step = r.step, "escalation step ran");
        if let Some(s) = core.config().escalation.get(r.step as usize) {
            core.metrics().escalation_step(match s.action {
                EscalationAction::Urge => "urge",
                EscalationAction::Supervise => "supervise",
            });
        }
        for n in &r.notified {
            core.units().wake_pushes(n);
        }
    }
    Ok(ran.len())
}

/// The urging notice (催办) a recipient gets, from the ladder or its sender.
pub(crate) fn urge_notice(
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
    }
}

fn notices(
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
