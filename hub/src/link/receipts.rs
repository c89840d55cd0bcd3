//! What happens to a document after it was accepted, at a unit's word:
//! its recipients' receipts (delivered, quarantined, signed for,
//! returned), and its sender's recall (撤回) and urging (催办).

use std::sync::Arc;

use gongwen_common::pki::{CertIdentity, serial_hex};
use gongwen_common::receipt::{Receipt, ReceiptKind};
use gongwen_common::wire::{ErrorCode, Message};
use gongwen_common::{DocId, NodeId};
use tracing::{info, warn};

use crate::link::refusal::Refusal;
use crate::rules::lifecycle::AnswerError;
use crate::state::core::Core;
use crate::store::{Delivery, DocRecord};

/// Verify a recipient's receipt and record it; wake the sender.
pub(crate) async fn record(
    bytes: &[u8],
    from: &NodeId,
    expect_doc: Option<DocId>,
    core: &Core,
) -> Result<ReceiptKind, Refusal> {
    let (receipt, _) =
        Receipt::verify(bytes, Some(&core.checker()), core.clock().now()).map_err(|e| {
            let code = if e.is_transient() {
                ErrorCode::NotNow
            } else {
                ErrorCode::BadSignature
            };
            Refusal::new(code, e.to_string())
        })?;
    if &receipt.issuer != from {
        warn!(issuer = %receipt.issuer, "security: a node sent a receipt issued by another");
        return Err(Refusal::new(
            ErrorCode::NotTheSender,
            "a node may submit only its own receipts",
        ));
    }
    if expect_doc.is_some_and(|d| d != receipt.doc_id) {
        return Err(Refusal::new(
            ErrorCode::Malformed,
            "the receipt is for another document",
        ));
    }
    take_verified(receipt, bytes, core).await
}

/// A receipt a peer hub passes back from a unit of its domain, or of one
/// reached through it: verified against that domain's CA and CRL, its
/// recipient named as this hub names it (`unit@domain`), then recorded as
/// a local unit's is. The bytes go on unchanged.
pub(crate) async fn record_relayed(
    bytes: &[u8],
    from: &gongwen_common::federation::Domain,
    core: &Core,
) -> Result<ReceiptKind, Refusal> {
    let Some(f) = core.federation() else {
        return Err(Refusal::new(ErrorCode::BadRequest, "no [federation] here"));
    };
    let mut verified = None;
    let mut last = None;
    for domain in f.carried_by(from) {
        let Some(checker) = f.checker_of(&domain) else {
            continue;
        };
        match Receipt::verify(bytes, Some(&checker), core.clock().now()) {
            Ok((r, _)) => {
                verified = Some((r, domain));
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let Some((mut receipt, domain)) = verified else {
        let refusal = match last {
            Some(e) if e.is_transient() => Refusal::new(ErrorCode::NotNow, e.to_string()),
            Some(e) => Refusal::new(ErrorCode::BadSignature, e.to_string()),
            None => Refusal::new(
                ErrorCode::NotNow,
                format!("no revocation list of the domains {from} carries is held yet"),
            ),
        };
        warn!(peer = %from, "security: a relayed receipt was refused: {}", refusal.message);
        return Err(refusal);
    };
    if receipt.issuer != receipt.recipient || !receipt.recipient.is_local() {
        return Err(Refusal::new(
            ErrorCode::NotTheSender,
            "a relayed receipt must be its recipient's own",
        ));
    }
    receipt.recipient = NodeId::remote(&receipt.recipient, &domain);
    receipt.issuer = receipt.recipient.clone();
    take_verified(receipt, bytes, core).await
}

/// A recipient's receipt whose signature is verified (from a unit here,
/// or passed back by a peer hub with its recipient named as this hub names
/// it): it must cite a document the hub holds, from one of its copies;
/// then it is recorded, the sender woken, and content every copy has is
/// let go of.
async fn take_verified(
    receipt: Receipt,
    bytes: &[u8],
    core: &Core,
) -> Result<ReceiptKind, Refusal> {
    let doc_id = receipt.doc_id;
    let Some(doc) = core.store().doc(doc_id).await? else {
        return Err(Refusal::new(
            ErrorCode::UnknownDocument,
            format!("the hub never accepted document {doc_id}"),
        ));
    };
    check_cites(&receipt, &doc)?;
    match receipt.kind {
        ReceiptKind::Delivered | ReceiptKind::Quarantined => {}
        ReceiptKind::Acknowledged | ReceiptKind::Rejected => {
            return record_answer(receipt, bytes, core).await;
        }
        ReceiptKind::Accepted => {
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                "an accepted receipt comes from a hub, not from a unit",
            ));
        }
    }
    let (kind, recipient) = (receipt.kind, receipt.recipient.clone());
    let recorded = core
        .committer()
        .delivery(Delivery {
            receipt_bytes: bytes.to_vec(),
            receipt,
            at_ms: core.now_ms(),
        })
        .await?;
    gongwen_common::failpoint::hit("hub-receipt-recorded");
    if recorded.new {
        core.metrics().receipt_recorded(kind);
        if kind == ReceiptKind::Quarantined {
            warn!(doc = %doc_id, %recipient, "recipient quarantined the document");
        }
        core.wake_pushes(&recorded.sender);
    }
    if recorded.content_done {
        // Every recipient has it: the ciphertext has done its job. (A crash
        // before this removal leaves content the next start sweeps away.)
        // After the wake: unlinking a big file takes a while (0.2 s for a
        // GiB here), and the sender need not wait for it.
        if let Err(e) = core.store().drop_content(doc_id).await {
            warn!(doc = %doc_id, "delivered content not removed yet: {e}");
        }
    }
    Ok(kind)
}

/// A receipt must cite the version the hub accepted, from one of its
/// recipients.
pub fn check_cites(receipt: &Receipt, doc: &DocRecord) -> Result<(), Refusal> {
    if serial_hex(&receipt.doc_digest) != doc.digest {
        return Err(Refusal::new(
            ErrorCode::ContentMismatch,
            "the receipt cites a different version of the document",
        ));
    }
    if !doc.recipients().contains(&receipt.recipient) {
        return Err(Refusal::new(
            ErrorCode::BadRequest,
            "the issuer is not a recipient of this document",
        ));
    }
    Ok(())
}

/// A clerk's answer must say who signed, or why it was returned.
pub fn check_answer(receipt: &Receipt) -> Result<(), Refusal> {
    let (detail, missing) = if receipt.kind == ReceiptKind::Acknowledged {
        (
            &receipt.by,
            "a signed-for receipt must name the person who signed",
        )
    } else {
        (&receipt.reason, "a returned receipt must give the reason")
    };
    if detail.trim().is_empty() {
        return Err(Refusal::new(ErrorCode::Malformed, missing));
    }
    Ok(())
}

/// A clerk's signed answer: signed for (签收) or returned (退回).
async fn record_answer(
    receipt: Receipt,
    bytes: &[u8],
    core: &Core,
) -> Result<ReceiptKind, Refusal> {
    check_answer(&receipt)?;
    let (kind, doc_id, recipient) = (receipt.kind, receipt.doc_id, receipt.recipient.clone());
    let outcome = core
        .store()
        .record_answer(receipt, bytes.to_vec(), core.now_ms())
        .await?;
    match outcome {
        Ok((sender, new)) => {
            if new {
                info!(doc = %doc_id, %recipient, "{}", kind.as_str());
                core.metrics().receipt_recorded(kind);
                core.wake_pushes(&sender);
                // A signed-for question may have armed the answer ladder.
                core.wake_escalation();
            }
            Ok(kind)
        }
        // The unit holds it, so its delivery receipt is on its way (a
        // redelivered copy is answered at once, on another stream): not
        // refused for good, or the unit would drop its answer.
        Err(e @ AnswerError::NotDelivered) => Err(Refusal::new(
            ErrorCode::NotNow,
            format!("{e} yet; give the answer again once its delivery is recorded"),
        )),
        Err(e) => Err(Refusal::new(ErrorCode::BadRequest, e.to_string())),
    }
}

/// The document, if `ident` sent it; why not otherwise.
async fn own_document(
    doc_id: DocId,
    ident: &CertIdentity,
    core: &Core,
    what: &str,
) -> Result<DocRecord, Refusal> {
    match core.store().doc(doc_id).await? {
        Some(d) if d.sender == ident.id => Ok(d),
        Some(_) => {
            warn!(doc = %doc_id, "security: a unit tried to {what} a document it did not send");
            Err(Refusal::new(
                ErrorCode::NotTheSender,
                format!("only the sender of a document may {what} it"),
            ))
        }
        None => Err(Refusal::new(
            ErrorCode::UnknownDocument,
            format!("the hub never accepted document {doc_id}"),
        )),
    }
}

/// The sender withdraws a document (撤回).
pub(crate) async fn recall(
    doc_id: DocId,
    reason: String,
    ident: &CertIdentity,
    core: &Core,
) -> Result<Message, Refusal> {
    let doc = own_document(doc_id, ident, core, "recall").await?;
    let now = core.now_ms();
    let at = gongwen_common::timefmt::rfc3339_at_ms(now).unwrap_or_default();
    let notice = Arc::new(move |r: &NodeId| {
        gongwen_common::notice::Notice {
            kind: gongwen_common::notice::NoticeKind::Recall,
            doc_id,
            sender: doc.sender.clone(),
            title: doc.title.clone(),
            doc_number: doc.doc_number.clone(),
            recipient: r.clone(),
            deadline: None,
            late_seconds: 0,
            urge_count: 0,
            escalation_level: 0,
            at: at.clone(),
            reason: reason.clone(),
            pressed_by: None,
        }
        .to_bytes()
    });
    let recalled = core.store().recall(doc_id, notice, now).await?;
    info!(doc = %doc_id, "recalled: {} withdrawn at the hub, {} notified, {} had already answered",
        recalled.withdrawn.len(), recalled.notified.len(), recalled.answered.len());
    for r in &recalled.notified {
        core.wake_pushes(r);
    }
    let body = serde_json::json!({
        "doc_id": doc_id,
        "withdrawn_at_hub": recalled.withdrawn,
        "recalled_from": recalled.notified,
        "already_answered": recalled.answered,
    });
    Ok(Message::Json {
        body: body.to_string().into_bytes(),
    })
}

/// The sender urges the units that have not signed for its document yet.
pub(crate) async fn urge(
    doc_id: DocId,
    units: Vec<NodeId>,
    ident: &CertIdentity,
    core: &Core,
) -> Result<Message, Refusal> {
    own_document(doc_id, ident, core, "urge").await?;
    let now = core.now_ms();
    let notice = Arc::new(move |doc: &DocRecord, r: &NodeId, rec: &_| {
        crate::rules::notices::urge_notice(doc, r, rec, now).to_bytes()
    });
    let urged = core.store().urge_now(doc_id, units, now, notice).await?;
    for r in &urged {
        core.wake_pushes(r);
    }
    info!(doc = %doc_id, units = urged.len(), "urged by the sender");
    Ok(Message::Json {
        body: serde_json::json!({ "doc_id": doc_id, "urged": urged })
            .to_string()
            .into_bytes(),
    })
}

/// A supervision office's 督办单: urge `units` (every unit that has not
/// signed for it, if none) about `doc`, in the office's name and words.
/// Counted as an urging, like the sender's. The caller checked that the
/// office is a supervisor unit.
pub(crate) async fn press(
    doc_id: DocId,
    units: Vec<NodeId>,
    words: &str,
    ident: &CertIdentity,
    core: &Core,
) -> Result<Message, Refusal> {
    let words = words.trim();
    if words.is_empty() {
        return Err(Refusal::new(
            ErrorCode::Malformed,
            "a 督办单 says what the office asks (words)",
        ));
    }
    if words.chars().count() > gongwen_common::supervision::MAX_PRESS_WORDS {
        return Err(Refusal::new(
            ErrorCode::TooLarge,
            format!(
                "a 督办单 holds at most {} characters",
                gongwen_common::supervision::MAX_PRESS_WORDS
            ),
        ));
    }
    if core.store().doc(doc_id).await?.is_none() {
        return Err(Refusal::new(
            ErrorCode::UnknownDocument,
            format!("the hub has no document {doc_id}"),
        ));
    }
    let now = core.now_ms();
    let pressed_by = gongwen_common::notice::PressedBy {
        unit: ident.id.clone(),
        name: ident.name.clone(),
        words: words.to_owned(),
    };
    let notice = Arc::new(move |doc: &DocRecord, r: &NodeId, rec: &_| {
        let mut n = crate::rules::notices::urge_notice(doc, r, rec, now);
        n.pressed_by = Some(pressed_by.clone());
        n.to_bytes()
    });
    let urged = core.store().urge_now(doc_id, units, now, notice).await?;
    for r in &urged {
        core.wake_pushes(r);
    }
    info!(
        doc = %doc_id,
        units = urged.len(),
        "督办单 (pressed) by the supervisor unit {}",
        ident.id
    );
    Ok(Message::Json {
        body: serde_json::json!({ "doc_id": doc_id, "urged": urged })
            .to_string()
            .into_bytes(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use gongwen_common::envelope::Urgency;

    fn id(s: &str) -> NodeId {
        NodeId::parse(s).unwrap()
    }

    fn doc() -> DocRecord {
        DocRecord {
            doc_id: DocId::from_parts(1_700_000_000_000, [1; 10]),
            sender: id("prov-gov"),
            to: vec![id("harbin-gov")],
            cc: vec![id("daqing-gov")],
            title: String::new(),
            doc_number: String::new(),
            doc_type: String::new(),
            urgency: Urgency::Normal,
            deadline: None,
            created_ms: 0,
            accepted_ms: 0,
            digest: serial_hex(&[7; 32]),
            content_len: 0,
            files: vec![],
            content_removed: false,
            links: Default::default(),
        }
    }

    fn receipt(kind: ReceiptKind, recipient: &str) -> Receipt {
        Receipt {
            doc_id: doc().doc_id,
            kind,
            recipient: id(recipient),
            issuer: id(recipient),
            doc_digest: [7; 32],
            time_ms: 1,
            by: String::new(),
            reason: String::new(),
            seals: Vec::new(),
        }
    }

    #[test]
    fn a_receipt_must_cite_the_accepted_version_from_a_recipient() {
        let d = doc();
        assert!(check_cites(&receipt(ReceiptKind::Delivered, "daqing-gov"), &d).is_ok());
        let mut other = receipt(ReceiptKind::Delivered, "harbin-gov");
        other.doc_digest = [8; 32];
        assert_eq!(
            check_cites(&other, &d).unwrap_err().code,
            ErrorCode::ContentMismatch
        );
        assert_eq!(
            check_cites(&receipt(ReceiptKind::Delivered, "suihua-gov"), &d)
                .unwrap_err()
                .code,
            ErrorCode::BadRequest
        );
    }

    #[test]
    fn an_answer_names_who_signed_or_why_it_was_returned() {
        let mut ack = receipt(ReceiptKind::Acknowledged, "harbin-gov");
        assert!(
            check_answer(&ack)
                .unwrap_err()
                .message
                .contains("name the person")
        );
        ack.by = "王秘书".into();
        assert!(check_answer(&ack).is_ok());
        let mut rej = receipt(ReceiptKind::Rejected, "harbin-gov");
        rej.by = "王秘书".into();
        assert!(check_answer(&rej).unwrap_err().message.contains("reason"));
        rej.reason = "  ".into();
        assert!(check_answer(&rej).is_err(), "blank is no reason");
        rej.reason = "错发".into();
        assert!(check_answer(&rej).is_ok());
    }
}
