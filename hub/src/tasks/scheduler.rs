//! Runs the escalation ladder: at each due time, the store applies the
//! step (urge or supervise) with its notices in one transaction, and the
//! nodes concerned are woken to receive them.

use std::sync::Arc;
use std::time::Duration;

use gongwen_common::config::EscalationAction;
use tracing::{error, info};

use crate::state::core::Core;
use crate::store::StoreError;

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
            Arc::new(move |doc, r, rec, step| {
                crate::rules::notices::ladder_notices(&for_notices, doc, r, rec, step, now)
            }),
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
            core.wake_pushes(n);
        }
    }
    Ok(ran.len())
}
