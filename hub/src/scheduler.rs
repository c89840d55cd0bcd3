//! Runs the escalation ladder: at each due time, the store applies the
//! step (urge or supervise) with its notices in one transaction, and the
//! nodes concerned are woken to receive them.

use std::sync::Arc;
use std::time::Duration;

use gongwen_common::NodeId;
use gongwen_common::config::EscalationAction;
use gongwen_common::notice::{Notice, NoticeKind};
use tracing::{error, info};

use crate::server::Shared;
use crate::store::{DeliveryRecord, DocRecord, StoreError};
use crate::supervision::time_ms;

/// Longest wait between looks at the ladder (catches clock jumps).
const MAX_WAIT: Duration = Duration::from_secs(1);

pub(crate) async fn run(shared: Arc<Shared>) {
    loop {
        if let Err(e) = run_due(&shared).await {
            error!("escalation: {e}");
        }
        let wait = match shared.store.run(|s| s.next_due()).await {
            Ok(Some(due)) => {
                let ms = (due - shared.clock.now_ms()).clamp(0, MAX_WAIT.as_millis() as i64);
                Duration::from_millis(ms as u64)
            }
            _ => MAX_WAIT,
        };
        let _ = tokio::time::timeout(wait, shared.escalation.notified()).await;
    }
}

/// Run every step due now; wake who must hear of it.
pub(crate) async fn run_due(shared: &Shared) -> Result<usize, StoreError> {
    let now = shared.clock.now_ms();
    let steps = shared.config.escalation.clone();
    let ran = shared
        .store
        .run(move |s| {
            s.run_due(now, &steps.clone(), |doc, r, rec, step| {
                notices(&steps, doc, r, rec, step, now)
            })
        })
        .await?;
    for r in &ran {
        info!(doc = %r.doc_id, recipient = %r.recipient, step = r.step, "escalation step ran");
        let registry = shared.registry();
        for n in &r.notified {
            if let Some(w) = registry.wake(n) {
                w.receipts.notify_one();
            }
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
    Notice {
        kind: NoticeKind::Urge,
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
    step: u32,
    now_ms: i64,
) -> Vec<(NodeId, Vec<u8>)> {
    let Some(s) = steps.get(step as usize) else {
        return Vec::new();
    };
    let notice = |kind| Notice {
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
    };
    match s.action {
        EscalationAction::Urge => vec![(
            recipient.clone(),
            urge_notice(doc, recipient, rec, now_ms).to_bytes(),
        )],
        EscalationAction::Supervise => s
            .notify
            .iter()
            .map(|n| (n.clone(), notice(NoticeKind::Supervise).to_bytes()))
            .collect(),
    }
}
