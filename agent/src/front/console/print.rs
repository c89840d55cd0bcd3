//! Pages to print (A4): the 签收单 and 退文单 of an answer, from the
//! signed receipt, with its verification code; the 公文处理笺.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gongwen_common::DocId;
use gongwen_common::receipt::ReceiptKind;

use super::{Page, Web, no_such_sent, pages, received};

/// GET /inbox/{doc}/print/handling: the 公文处理笺, to print.
pub(super) async fn print_handling(
    State(web): State<Arc<Web>>,
    _: Page,
    Path(doc_id): Path<String>,
) -> Response {
    match received(&web, &doc_id).await {
        Ok((rec, _)) => {
            pages::handling_slip(&rec, &web.unit, &format!("/inbox/{}", rec.doc_id)).into_response()
        }
        Err(r) => r,
    }
}

/// A slip that cannot be printed: not answered yet, or no receipt held.
fn no_slip(text: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        pages::message(None, "没有可打印的签收单", text),
    )
        .into_response()
}

/// Whether a receipt signs for the document (a 签收单) or returns it (a
/// 退文单), and what the slip says: who signed, or why it was returned.
fn answered(kind: ReceiptKind, by: String, reason: String) -> (bool, String) {
    if kind == ReceiptKind::Acknowledged {
        (true, by)
    } else {
        (false, reason)
    }
}

/// GET /inbox/{doc}/print/slip: this unit's 签收单 or 退文单, from the
/// receipt it signed.
pub(super) async fn print_received_slip(
    State(web): State<Arc<Web>>,
    _: Page,
    Path(doc_id): Path<String>,
) -> Response {
    let (rec, _) = match received(&web, &doc_id).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let doc = rec.doc_id;
    let now = web.parts.identity().clock().now();
    let receipt = web.parts.store().run(move |s| s.answer(doc)).await;
    let Some((r, code)) = receipt
        .ok()
        .flatten()
        .and_then(|b| crate::incoming::receipts::verification_code(&b, now))
    else {
        return no_slip("这份公文还没有签收或退回。");
    };
    let (signed_for, answer) = answered(r.kind, r.by, r.reason);
    let slip = pages::Slip {
        signed_for,
        sender: rec
            .sender_name
            .clone()
            .unwrap_or_else(|| rec.sender.to_string()),
        recipient: web.unit.clone(),
        doc_number: rec.doc_number.clone(),
        title: rec.title.clone(),
        received_ms: Some(rec.received_ms),
        answer,
        answered_ms: r.time_ms,
        code,
        doc_id: doc.to_string(),
    };
    pages::slip(&slip, &format!("/inbox/{doc}")).into_response()
}

/// GET /sent/{doc}/slip/{unit}: a recipient's 签收单 or 退文单 of a
/// document this unit sent, from the receipt that unit signed.
pub(super) async fn print_sent_slip(
    State(web): State<Arc<Web>>,
    _: Page,
    Path((doc_id, unit)): Path<(String, String)>,
) -> Response {
    let Ok(doc) = DocId::parse(&doc_id) else {
        return no_such_sent();
    };
    let held = web
        .parts
        .store()
        .run(move |s| Ok((s.sent(doc)?, s.receipts(doc)?)))
        .await;
    let Ok((Some(record), receipts)) = held else {
        return no_such_sent();
    };
    // The answer that unit gave (签收 or 退回), and when it was delivered.
    let now = web.parts.identity().clock().now();
    let of = |kind: ReceiptKind| {
        receipts
            .iter()
            .find(|(who, k, _)| who.as_str() == unit && *k == kind)
            .and_then(|(_, _, b)| crate::incoming::receipts::verification_code(b, now))
    };
    let Some((r, code)) = of(ReceiptKind::Acknowledged).or_else(|| of(ReceiptKind::Rejected))
    else {
        return no_slip("这个单位还没有签收或退回这份公文。");
    };
    let names = web.parts.known().names();
    let (signed_for, answer) = answered(r.kind, r.by, r.reason);
    let slip = pages::Slip {
        signed_for,
        sender: web.unit.clone(),
        recipient: names.show(&unit).to_owned(),
        doc_number: record.doc_number.clone(),
        title: record.title.clone(),
        received_ms: of(ReceiptKind::Delivered).map(|(d, _)| d.time_ms),
        answer,
        answered_ms: r.time_ms,
        code,
        doc_id: doc.to_string(),
    };
    pages::slip(&slip, &format!("/sent/{doc}")).into_response()
}
