//! What a unit's clerk does with received documents: sign for (签收) or
//! return (退回) them, and what happens when the hub urges (催办),
//! escalates (督办) or the sender recalls (撤回).
//!
//! Each act is a receipt signed with this unit's key, recorded here and
//! queued for the hub in one transaction; the session hands queued answers
//! to the hub whenever it is connected.

use std::path::Path;

use gongwen_common::DocId;
use gongwen_common::fsutil::{sync_dir, write_atomic};
use gongwen_common::notice::{Notice, NoticeKind};
use gongwen_common::receipt::{Receipt, ReceiptKind};
use gongwen_common::timefmt::rfc3339;
use serde::Serialize;
use time::OffsetDateTime;
use tracing::{debug, info, warn};

use crate::unit::identity::Identity;
use crate::unit::store::Store;
use crate::unit::store::{QueuedAnswer, ReceivedRecord, ReceivedState, StoreError};

/// Why a clerk's act was refused; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum ActError {
    #[error("本单位没有收到过这份公文（{0}）")]
    Unknown(DocId),
    #[error("这份公文（{0}）未通过验证，已隔离，不能签收或退回")]
    Quarantined(DocId),
    #[error("来文单位已撤回这份公文（{0}）{1}")]
    Recalled(DocId, String),
    #[error("这份公文（{0}）已经{1}")]
    Answered(DocId, String),
    #[error("{0}")]
    Missing(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("signing failed: {0}")]
    Sign(#[from] gongwen_common::pki::PkiError),
}

fn parse_digest(hex: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if hex.len() != 64 {
        return None;
    }
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Whether a received document in the state `rec` records may be signed
/// for or returned now. Pure: the rule every front door's 签收 and 退回
/// follows, applied inside the store's write transaction
/// ([`crate::unit::store::Store::record_answer`]).
pub fn may_answer(rec: &ReceivedRecord) -> Result<(), ActError> {
    let doc_id = rec.doc_id;
    match rec.state {
        ReceivedState::Delivered => Ok(()),
        ReceivedState::Quarantined => Err(ActError::Quarantined(doc_id)),
        ReceivedState::Recalled => {
            let why = rec
                .recall_reason
                .as_deref()
                .map(|r| format!("，理由：{r}"))
                .unwrap_or_default();
            Err(ActError::Recalled(doc_id, why))
        }
        ReceivedState::Acknowledged => Err(ActError::Answered(
            doc_id,
            format!("由{}签收", rec.answer.as_deref().unwrap_or("?")),
        )),
        ReceivedState::Rejected => Err(ActError::Answered(
            doc_id,
            format!("退回（理由：{}）", rec.answer.as_deref().unwrap_or("")),
        )),
    }
}

/// The record once answered: `kind` by `detail` (who signed for it, or why
/// it was returned) at `now_ms`. Pure.
pub fn answered(
    rec: &ReceivedRecord,
    kind: ReceiptKind,
    detail: &str,
    now_ms: i64,
) -> ReceivedRecord {
    let mut rec = rec.clone();
    rec.state = if kind == ReceiptKind::Acknowledged {
        ReceivedState::Acknowledged
    } else {
        ReceivedState::Rejected
    };
    rec.answer = Some(detail.to_owned());
    rec.answered_ms = Some(now_ms);
    rec
}

/// The seals arrival verified, as a receipt carries them.
fn seals_seen(
    found: &crate::rules::metadata::OfdFindings,
) -> Vec<gongwen_common::receipt::SealSeen> {
    use gongwen_common::receipt::{SealOutcome, SealSeen};
    found
        .seals
        .iter()
        .map(|s| SealSeen {
            file: s.file.clone(),
            outcome: match s.verdict.result {
                gongwen_ofd::SealResult::Valid => SealOutcome::Valid,
                gongwen_ofd::SealResult::Invalid => SealOutcome::Invalid,
                gongwen_ofd::SealResult::Unverifiable => SealOutcome::Unverifiable,
            },
            reason: s.verdict.reason.clone(),
            seal_name: s.verdict.seal_name.clone().unwrap_or_default(),
            signer: s.verdict.signer.clone().unwrap_or_default(),
        })
        .collect()
}

/// Sign for (`Acknowledged`, `detail` = the person) or return
/// (`Rejected`, `detail` = the reason) a received document. The check and
/// the record are one step: of two answers at the same moment (two clerks,
/// a clerk and a script), exactly one is signed and recorded and the other
/// is refused with [`ActError::Answered`]. Blocking.
pub fn answer(
    me: &Identity,
    store: &Store,
    doc_id: DocId,
    kind: ReceiptKind,
    detail: &str,
) -> Result<ReceivedRecord, ActError> {
    if detail.trim().is_empty() {
        return Err(ActError::Missing(if kind == ReceiptKind::Acknowledged {
            "请填写签收人"
        } else {
            "退回必须填写理由"
        }));
    }
    let node = me.node_id().clone();
    let signer = me.credentials().signer();
    let now = me.now_ms();
    let rec = store.record_answer(doc_id, |now_rec| {
        let rec = now_rec.ok_or(ActError::Unknown(doc_id))?;
        may_answer(rec)?;
        let digest = parse_digest(&rec.digest).ok_or(ActError::Unknown(doc_id))?;
        // What the clerk was shown of the seals (验章 on arrival), so the
        // sender and the hub know what this unit saw when it answered.
        let seals = seals_seen(&crate::rules::metadata::OfdFindings::read(&document_dir(
            me, rec,
        )));
        let receipt = Receipt {
            doc_id,
            kind,
            recipient: node.clone(),
            issuer: node,
            doc_digest: digest,
            time_ms: now,
            by: if kind == ReceiptKind::Acknowledged {
                detail.to_owned()
            } else {
                String::new()
            },
            reason: if kind == ReceiptKind::Rejected {
                detail.to_owned()
            } else {
                String::new()
            },
            seals,
        }
        .sign(&signer)?
        .encode();
        Ok::<_, ActError>((answered(rec, kind, detail, now), receipt))
    })?;
    info!(doc = %doc_id, "{} ({detail})", kind.as_str());
    Ok(rec)
}

/// What became of the queued answers offered to the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submitted {
    /// Each was taken, or refused for good.
    All,
    /// The hub asked for some again later (e.g. it has not recorded the
    /// delivery the answer follows yet).
    SomeLater,
    /// The connection broke.
    ConnectionLost,
}

/// Hand queued answers to the hub.
pub async fn submit_answers(conn: &quinn::Connection, store: &Store) -> Submitted {
    use gongwen_common::wire::Message;
    let queued = store.run(|s| s.to_submit()).await.unwrap_or_default();
    let mut outcome = Submitted::All;
    for QueuedAnswer {
        doc_id,
        receipt,
        turn,
    } in queued
    {
        match gongwen_common::stream::request(
            conn,
            &Message::SubmitReceipt { receipt },
            gongwen_common::stream::READ_TIMEOUT,
        )
        .await
        {
            Ok(Message::Ok) => {}
            Ok(Message::Error { code, message }) if !code.is_retryable() => {
                // e.g. recalled meanwhile: the hub's word is final.
                warn!(doc = %doc_id, "the hub did not take our answer: {message}");
            }
            Ok(Message::Error { message, .. }) => {
                debug!(doc = %doc_id, "answer not taken yet ({message}); will retry");
                outcome = Submitted::SomeLater;
                continue;
            }
            Ok(other) => {
                warn!(doc = %doc_id, "answer not confirmed ({}); will retry", other.describe());
                outcome = Submitted::SomeLater;
                continue;
            }
            Err(_) => return Submitted::ConnectionLost,
        }
        if let Err(e) = store.run(move |s| s.submitted(doc_id, turn)).await {
            warn!("store: {e}");
        }
    }
    outcome
}

/// An RFC 3339 time from the hub in Beijing time, or "-". Pure.
fn beijing_text(t: Option<&str>) -> String {
    t.and_then(|t| gongwen_common::timefmt::parse_rfc3339(t).ok())
        .map(|t| {
            gongwen_common::timefmt::beijing((t.unix_timestamp_nanos() / 1_000_000) as i64, false)
        })
        .unwrap_or_else(|| "-".into())
}

/// The 催办通知 a clerk finds beside the document: in Chinese, times in
/// Beijing time, the sender by its name, and what to do in the console
/// (no command line). Pure.
pub fn urge_text(n: &Notice, sender_name: Option<&str>) -> String {
    // An urge about an answer asked for says so (the hub gives the
    // reason); otherwise it is about signing for.
    let (due, todo) = if n.reason.is_empty() {
        (
            "签收期限",
            "请尽快在公文交换网页的「待签收」中打开此文，签收或退回。".to_owned(),
        )
    } else {
        (
            "答复期限",
            format!(
                "{}。请尽快在公文交换网页中打开此文，答复（回复）。",
                n.reason
            ),
        )
    };
    let sender = match sender_name {
        Some(name) => format!("{name}（{}）", n.sender),
        None => n.sender.to_string(),
    };
    let facts = format!(
        "公文：{} {}\n来文单位：{sender}\n{due}：{}（北京时间）\n已逾期：{}\n",
        n.doc_number,
        n.title,
        beijing_text(n.deadline.as_deref()),
        late_text(n.late_seconds),
    );
    match &n.pressed_by {
        Some(p) => format!(
            "督办单（第 {} 次催办）\n\n督办单位：{}\n督办时间：{}（北京时间）\n督办意见：{}\n\n{facts}\n{todo}\n",
            n.urge_count,
            match &p.name {
                Some(name) => format!("{name}（{}）", p.unit),
                None => p.unit.to_string(),
            },
            beijing_text(Some(&n.at)),
            p.words,
        ),
        None => format!("催办通知（第 {} 次）\n\n{facts}\n{todo}\n", n.urge_count),
    }
}

/// The file a 催办 or 督办单 is kept in beside the document.
pub fn urge_file_name(n: &Notice) -> String {
    let kind = if n.pressed_by.is_some() {
        "督办单"
    } else {
        "催办通知"
    };
    format!("{kind}-{}.txt", n.urge_count)
}

/// Take a notice from the hub. Blocking.
pub fn take_notice(me: &Identity, store: &Store, n: &Notice) -> Result<(), std::io::Error> {
    match n.kind {
        NoticeKind::Urge => take_urge(me, store, n),
        NoticeKind::Supervise => take_round(
            me,
            store,
            &n.at,
            n.escalation_level,
            std::slice::from_ref(n),
        ),
        NoticeKind::Recall => take_recall(me, store, n),
        // Passed between hubs only; the copy's state at the hub says it.
        NoticeKind::Undeliverable => Ok(()),
    }
}

fn store_io(e: StoreError) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// 催办: the notice beside the document, and the count on its record.
fn take_urge(me: &Identity, store: &Store, n: &Notice) -> Result<(), std::io::Error> {
    let f = me.folders();
    let io = store_io;
    let doc_dir = f.inbox.join(n.sender.as_str()).join(n.doc_id.to_string());
    let sender_name = store
        .received(n.doc_id)
        .ok()
        .flatten()
        .and_then(|(rec, _)| rec.sender_name);
    let text = urge_text(n, sender_name.as_deref());
    if doc_dir.is_dir() {
        write_atomic(&doc_dir.join(urge_file_name(n)), text.as_bytes(), 0o644)?;
    }
    let counted = store
        .update_received(n.doc_id, |rec| {
            let mut rec = rec.clone();
            rec.urge_count = rec.urge_count.max(n.urge_count);
            Some(rec)
        })
        .map_err(io)?;
    if counted.is_none() {
        // The hub pushes notices and documents side by side; an
        // urge can come first after a reconnect. Refused, it stays
        // queued at the hub and comes again after the document.
        return Err(std::io::Error::other(format!(
            "document {} has not arrived here yet; urge it again after delivery",
            n.doc_id
        )));
    }
    warn!(
        doc = %n.doc_id,
        "urged (催办) #{}: {}, {} s late",
        n.urge_count,
        if n.reason.is_empty() { "not signed for" } else { "not answered" },
        n.late_seconds
    );
    Ok(())
}

/// 撤回: the document moves to recalled/ with a note, and can no longer be
/// signed for.
fn take_recall(me: &Identity, store: &Store, n: &Notice) -> Result<(), std::io::Error> {
    let f = me.folders();
    let io = store_io;
    let Some((held, _)) = store.received(n.doc_id).map_err(io)? else {
        return Ok(());
    };
    // The state first, so no clerk can sign for it from here on;
    // the move below is idempotent, so a notice re-sent after a
    // crash completes it.
    store
        .update_received(n.doc_id, |rec| {
            (rec.state != ReceivedState::Recalled).then(|| {
                let mut rec = rec.clone();
                rec.state = ReceivedState::Recalled;
                rec.recall_reason = Some(n.reason.clone());
                rec
            })
        })
        .map_err(io)?;
    let from = f.inbox.join(n.sender.as_str()).join(n.doc_id.to_string());
    let to_dir = f.recalled.join(n.sender.as_str());
    let to = to_dir.join(n.doc_id.to_string());
    std::fs::create_dir_all(&to_dir)?;
    if from.exists() && !to.exists() {
        std::fs::rename(&from, &to)?;
    }
    if to.exists() {
        let text = format!(
            "撤回说明\n\n来文单位 {} 于 {}（北京时间）撤回此文件。\n理由：{}\n",
            match &held.sender_name {
                Some(name) => format!("{name}（{}）", n.sender),
                None => n.sender.to_string(),
            },
            beijing_text(Some(&n.at)),
            n.reason
        );
        write_atomic(&to.join("撤回说明.txt"), text.as_bytes(), 0o644)?;
    }
    sync_dir(&to_dir)?;
    if let Some(parent) = from.parent() {
        let _ = sync_dir(parent);
    }
    info!(doc = %n.doc_id, "recalled by {}: moved to recalled/", n.sender);
    Ok(())
}

/// Take the 督办 notices of one escalation round (the hub's time `at`,
/// level `level`): kept in the store, and listed, all of the round's
/// documents in one file, `inbox/督办/督办通知-<北京时间>-第<级>级.txt`,
/// written anew as more of the round arrive. Blocking.
pub fn take_round(
    me: &Identity,
    store: &Store,
    at: &str,
    level: u32,
    notices: &[Notice],
) -> Result<(), std::io::Error> {
    let io = |e: StoreError| std::io::Error::other(e.to_string());
    let all = store.record_supervision(at, level, notices).map_err(io)?;
    let dir = me.folders().inbox.join("督办");
    std::fs::create_dir_all(&dir)?;
    let at_ms = gongwen_common::timefmt::parse_rfc3339(at)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .unwrap_or(0);
    let stamp: String = gongwen_common::timefmt::beijing(at_ms, true)
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let name = format!("督办通知-{stamp}-第{level}级.txt");
    write_atomic(
        &dir.join(&name),
        round_text(at_ms, level, &all).as_bytes(),
        0o644,
    )?;
    sync_dir(&dir)?;
    warn!(
        "supervision notice (督办), level {level}: {} document(s) overdue in this round; see inbox/督办/{name}",
        all.len()
    );
    Ok(())
}

/// The text of one round's 督办 notice: what the office reads. Pure.
pub fn round_text(at_ms: i64, level: u32, notices: &[Notice]) -> String {
    use gongwen_common::timefmt::beijing;
    let mut out = format!(
        "督办通知（第 {level} 级）\n\n交换中心于 {}（北京时间）将以下 {} 份公文的办理情况提交督办：收文单位逾期没有签收或答复。\n\n",
        beijing(at_ms, false),
        notices.len()
    );
    out.push_str("序号\t收文单位\t文号\t标题\t来文单位\t期限\t已逾期\t已催办\t文件编号\n");
    for (i, n) in notices.iter().enumerate() {
        let deadline = n
            .deadline
            .as_deref()
            .and_then(|d| gongwen_common::timefmt::parse_rfc3339(d).ok())
            .map(|t| beijing((t.unix_timestamp_nanos() / 1_000_000) as i64, false))
            .unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{} 次\t{}\n",
            i + 1,
            n.recipient,
            if n.doc_number.is_empty() {
                "-"
            } else {
                &n.doc_number
            },
            n.title,
            n.sender,
            deadline,
            late_text(n.late_seconds),
            n.urge_count,
            n.doc_id
        ));
    }
    out
}

/// How late, in words: 2小时5分钟.
fn late_text(s: i64) -> String {
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (d, h) {
        (0, 0) if m == 0 => "不到1分钟".into(),
        (0, 0) => format!("{m}分钟"),
        (0, _) => format!("{h}小时{m}分钟"),
        _ => format!("{d}天{h}小时"),
    }
}

/// One row of `gongwen-agent inbox`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct InboxRow {
    pub doc_id: String,
    pub sender: String,
    pub title: String,
    pub doc_number: String,
    pub doc_type: String,
    pub urgency: String,
    pub deadline: Option<String>,
    pub received_at: Option<String>,
    pub state: String,
    pub urge_count: u32,
    /// Who signed for it, or why it was returned.
    pub answer: Option<String>,
    pub reason: Option<String>,
}

fn time_of(ms: i64) -> Option<String> {
    OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .map(rfc3339)
        .ok()
}

pub fn inbox_rows(records: Vec<ReceivedRecord>, pending_only: bool) -> Vec<InboxRow> {
    records
        .into_iter()
        .filter(|r| !pending_only || r.state == ReceivedState::Delivered)
        .map(|r| InboxRow {
            doc_id: r.doc_id.to_string(),
            sender: r.sender.to_string(),
            title: r.title,
            doc_number: r.doc_number,
            doc_type: r.doc_type,
            urgency: r.urgency.as_str().into(),
            deadline: r.deadline.and_then(|s| time_of(s * 1000)),
            received_at: time_of(r.received_ms),
            state: r.state.as_str().into(),
            urge_count: r.urge_count,
            answer: r.answer,
            reason: r.reason.or(r.recall_reason),
        })
        .collect()
}

/// Where a received document's files are now.
pub fn document_dir(me: &Identity, rec: &ReceivedRecord) -> std::path::PathBuf {
    let base: &Path = match rec.state {
        ReceivedState::Recalled => &me.folders().recalled,
        ReceivedState::Quarantined => return me.folders().quarantine.join(rec.doc_id.to_string()),
        _ => &me.folders().inbox,
    };
    base.join(rec.sender.as_str()).join(rec.doc_id.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    fn urge(reason: &str) -> Notice {
        Notice {
            kind: NoticeKind::Urge,
            doc_id: DocId::from_parts(1_700_000_000_000, [1; 10]),
            sender: gongwen_common::NodeId::parse("prov-gov").unwrap(),
            title: "关于做好冬季安全生产工作的通知".into(),
            doc_number: "黑政发〔2026〕12号".into(),
            recipient: gongwen_common::NodeId::parse("harbin-gov").unwrap(),
            deadline: Some("2026-12-01T02:00:00Z".into()),
            late_seconds: 2 * 3600 + 5 * 60,
            urge_count: 2,
            escalation_level: 1,
            at: "2026-12-01T04:05:00Z".into(),
            reason: reason.into(),
            pressed_by: None,
        }
    }

    #[test]
    fn an_urging_notice_is_in_chinese_with_beijing_time_and_no_command_line() {
        let text = urge_text(&urge(""), Some("黑龙江省人民政府"));
        assert!(text.starts_with("催办通知（第 2 次）"), "{text}");
        assert!(
            text.contains("来文单位：黑龙江省人民政府（prov-gov）"),
            "{text}"
        );
        assert!(
            text.contains("签收期限：2026-12-01 10:00（北京时间）"),
            "{text}"
        );
        assert!(text.contains("已逾期：2小时5分钟"), "{text}");
        assert!(text.contains("签收或退回"), "{text}");
        let answer = urge_text(&urge("答复期限已过"), None);
        assert!(
            answer.contains("答复期限：") && answer.contains("答复（回复）"),
            "{answer}"
        );
        for t in [&text, &answer] {
            assert!(!t.contains("gongwen-agent") && !t.contains("--"), "{t}");
            // Latin letters only in the unit's id, in brackets.
            let latin: String = t
                .replace("prov-gov", "")
                .chars()
                .filter(|c| c.is_ascii_alphabetic())
                .collect();
            assert!(latin.is_empty(), "English in {t}");
        }
        assert_eq!(late_text(30), "不到1分钟");
        assert_eq!(late_text(600), "10分钟");
    }

    #[test]
    fn a_press_from_a_supervision_office_says_who_and_what() {
        let mut n = urge("");
        n.pressed_by = Some(gongwen_common::notice::PressedBy {
            unit: NodeId::parse("prov-office").unwrap(),
            name: Some("省政府督查室".into()),
            words: "请于今日下班前签收并报告原因".into(),
        });
        let text = urge_text(&n, Some("黑龙江省人民政府"));
        assert!(text.starts_with("督办单（第 2 次催办）"), "{text}");
        assert!(
            text.contains("督办单位：省政府督查室（prov-office）"),
            "{text}"
        );
        assert!(
            text.contains("督办时间：2026-12-01 12:05（北京时间）"),
            "{text}"
        );
        assert!(
            text.contains("督办意见：请于今日下班前签收并报告原因"),
            "{text}"
        );
        assert!(text.contains("签收期限：2026-12-01 10:00"), "{text}");
        assert_eq!(urge_file_name(&n), "督办单-2.txt");
        assert_eq!(urge_file_name(&urge("")), "催办通知-2.txt");
    }

    use gongwen_common::NodeId;

    fn received(state: ReceivedState) -> ReceivedRecord {
        ReceivedRecord {
            doc_id: DocId::generate(),
            sender: NodeId::parse("prov-gov").unwrap(),
            title: "通知".into(),
            doc_number: String::new(),
            doc_type: String::new(),
            urgency: Default::default(),
            deadline: None,
            received_ms: 1_000,
            state,
            reason: None,
            digest: "ab".repeat(32),
            urge_count: 0,
            answer: None,
            answered_ms: None,
            recall_reason: None,
            sender_name: None,
        }
    }

    #[test]
    fn a_delivered_document_may_be_signed_for_or_returned() {
        assert!(may_answer(&received(ReceivedState::Delivered)).is_ok());
    }

    #[test]
    fn an_answered_document_is_refused_saying_how_it_was_answered() {
        let signed = answered(
            &received(ReceivedState::Delivered),
            ReceiptKind::Acknowledged,
            "李四",
            2_000,
        );
        let e = may_answer(&signed).unwrap_err().to_string();
        assert!(e.contains("已经由李四签收"), "{e}");
        let returned = answered(
            &received(ReceivedState::Delivered),
            ReceiptKind::Rejected,
            "错发",
            2_000,
        );
        let e = may_answer(&returned).unwrap_err().to_string();
        assert!(e.contains("已经退回（理由：错发）"), "{e}");
    }

    #[test]
    fn a_quarantined_or_recalled_document_cannot_be_answered() {
        assert!(matches!(
            may_answer(&received(ReceivedState::Quarantined)),
            Err(ActError::Quarantined(_))
        ));
        let mut recalled = received(ReceivedState::Recalled);
        recalled.recall_reason = Some("发错了".into());
        match may_answer(&recalled) {
            Err(ActError::Recalled(_, why)) => assert!(why.contains("发错了"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn answering_records_who_or_why_and_when_and_nothing_else() {
        let before = received(ReceivedState::Delivered);
        let after = answered(&before, ReceiptKind::Acknowledged, "李四", 2_000);
        assert_eq!(after.state, ReceivedState::Acknowledged);
        assert_eq!(after.answer.as_deref(), Some("李四"));
        assert_eq!(after.answered_ms, Some(2_000));
        let untouched = ReceivedRecord {
            state: before.state,
            answer: None,
            answered_ms: None,
            ..after.clone()
        };
        assert_eq!(untouched, before);
        let returned = answered(&before, ReceiptKind::Rejected, "错发", 3_000);
        assert_eq!(returned.state, ReceivedState::Rejected);
    }

    #[test]
    fn a_receipt_digest_is_read_from_its_hex_or_not_at_all() {
        assert_eq!(parse_digest(&"0f".repeat(32)), Some([0x0f; 32]));
        assert_eq!(parse_digest("0f"), None);
        assert_eq!(parse_digest(&"zz".repeat(32)), None);
    }

    fn notice(unit: &str, late_seconds: i64) -> Notice {
        Notice {
            kind: NoticeKind::Supervise,
            doc_id: DocId::generate(),
            sender: NodeId::parse("prov-gov").unwrap(),
            title: "关于做好冬季安全生产工作的通知".into(),
            doc_number: "黑政发〔2026〕12号".into(),
            recipient: NodeId::parse(unit).unwrap(),
            deadline: Some("2026-12-07T06:00:00Z".into()),
            late_seconds,
            urge_count: 1,
            escalation_level: 2,
            at: "2026-12-07T08:00:00Z".into(),
            reason: String::new(),
            pressed_by: None,
        }
    }

    #[test]
    fn a_rounds_notice_lists_every_document_with_beijing_times_and_lateness_in_words() {
        let at_ms = 1_796_630_400_000; // 2026-12-07T08:00:00Z
        let text = round_text(
            at_ms,
            2,
            &[
                notice("daqing-gov", 7_200),
                notice("harbin-gov", 30),
                notice("qiqihar-gov", 200_000),
            ],
        );
        assert!(text.starts_with("督办通知（第 2 级）"), "{text}");
        assert!(text.contains("以下 3 份公文"), "{text}");
        assert!(text.contains("2026-12-07 16:00"), "Beijing time: {text}");
        assert!(
            text.contains("daqing-gov") && text.contains("2小时0分钟"),
            "{text}"
        );
        assert!(text.contains("不到1分钟"), "{text}");
        assert!(text.contains("2天7小时"), "{text}");
        assert_eq!(text.lines().filter(|l| l.contains("黑政发")).count(), 3);
    }
}
