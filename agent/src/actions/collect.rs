//! 汇总: at the unit that asked for answers, one folder per answering unit
//! and one summary table of every recipient, answered or not —
//! `汇总表.xlsx` (the units that have not answered, 未报送, in red) and
//! `汇总表.csv` (UTF-8 with a BOM, as Excel opens it).
//!
//! The rows are a plain function of what the agent already holds (the
//! receipts of the question, the answers in its inbox); the files are
//! written from the rows.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gongwen_common::envelope::{Deadline, SealedHeader};
use gongwen_common::links::Decision;
use gongwen_common::supervision::{DocStatus, RecipientRow, ReplyState};
use gongwen_common::{DocId, NodeId};

use crate::rules::copy_state::CopyState;
use crate::unit::directory::Known;
use crate::unit::identity::Identity;
use crate::unit::store::Store;

/// The table's columns, in order.
pub const HEADERS: [&str; 10] = [
    "单位代码",
    "单位名称",
    "签收状态",
    "签收时间",
    "报送时间",
    "是否按时",
    "审批意见",
    "备注",
    "附件",
    "回复文号",
];

/// What 是否按时 says of an answer.
pub const ON_TIME: &str = "按时";
pub const LATE: &str = "逾期";
pub const MISSING: &str = "未报送";

/// One recipient's answer, as it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered {
    pub doc_id: DocId,
    /// When the hub took it (or, if the hub cannot be asked, when it
    /// arrived here).
    pub at_ms: i64,
    /// The hub's word on whether it came after `reply_by` (its clock
    /// decides); judged from `at_ms` here when the hub cannot be asked.
    pub late: Option<bool>,
    pub decision: Option<Decision>,
    pub note: String,
    pub files: Vec<String>,
}

/// What is known of one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub id: NodeId,
    pub name: String,
    /// 签收 state in words (已签收, 已送达, 已退回 …) and when.
    pub sign_state: String,
    pub signed_ms: Option<i64>,
    pub answer: Option<Answered>,
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub cells: [String; 10],
    /// 未报送: shown in red.
    pub missing: bool,
}

/// A time as the province reads it: Beijing time, to the second.
fn time_ms(ms: i64) -> String {
    gongwen_common::timefmt::beijing(ms, true)
}

/// Milliseconds of an RFC 3339 time.
fn rfc3339_ms(text: &str) -> Option<i64> {
    let t = gongwen_common::timefmt::parse_rfc3339(text).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// The table, one row per recipient in the order given; `reply_by_ms`
/// decides 按时 or 逾期.
pub fn rows(recipients: &[Recipient], reply_by_ms: Option<i64>) -> Vec<Row> {
    recipients
        .iter()
        .map(|r| {
            let (answered_at, timely, decision, note, files, doc) = match &r.answer {
                Some(a) => (
                    time_ms(a.at_ms),
                    if a.late
                        .unwrap_or_else(|| reply_by_ms.is_some_and(|by| a.at_ms > by))
                    {
                        LATE
                    } else {
                        ON_TIME
                    },
                    a.decision.map(Decision::chinese).unwrap_or_default(),
                    a.note.clone(),
                    a.files.join("；"),
                    a.doc_id.to_string(),
                ),
                None => (
                    String::new(),
                    MISSING,
                    "",
                    String::new(),
                    String::new(),
                    String::new(),
                ),
            };
            Row {
                cells: [
                    r.id.to_string(),
                    r.name.clone(),
                    r.sign_state.clone(),
                    r.signed_ms.map(time_ms).unwrap_or_default(),
                    answered_at,
                    timely.to_owned(),
                    decision.to_owned(),
                    note,
                    files,
                    doc,
                ],
                missing: r.answer.is_none(),
            }
        })
        .collect()
}

/// A cell as a spreadsheet must show it, not run it: text from other
/// units (a note) that starts like a formula gets a leading apostrophe —
/// a leading tab or carriage return too, which some spreadsheets skip
/// before reading a formula. Every CSV and sheet the agent writes uses it.
pub fn inert(cell: &str) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell.to_owned()
    }
}

/// A folder name from a unit's id and display name: no separators or
/// control characters, whatever the name holds.
fn folder_name(id: &NodeId, name: &str) -> String {
    let name: String = name
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .take(60)
        .collect();
    format!("{id} {}", name.trim_matches('.')).trim().to_owned()
}

/// The table as CSV: UTF-8 with a BOM, CRLF, every field quoted.
pub fn csv(rows: &[Row]) -> String {
    let line = |cells: &[&str]| {
        let quoted: Vec<String> = cells
            .iter()
            .map(|c| format!("\"{}\"", inert(c).replace('"', "\"\"")))
            .collect();
        format!("{}\r\n", quoted.join(","))
    };
    let mut out = String::from("\u{feff}");
    out.push_str(&line(&HEADERS));
    for r in rows {
        let cells: Vec<&str> = r.cells.iter().map(String::as_str).collect();
        out.push_str(&line(&cells));
    }
    out
}

/// The table as an .xlsx workbook (sheet 汇总表), 未报送 rows in red.
pub fn xlsx(title: &str, rows: &[Row]) -> Result<Vec<u8>, String> {
    use rust_xlsxwriter::{Color, Format, Workbook};
    let e = |e: rust_xlsxwriter::XlsxError| e.to_string();
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    sheet.set_name("汇总表").map_err(e)?;
    let bold = Format::new().set_bold();
    let red = Format::new().set_font_color(Color::Red);
    sheet
        .write_string_with_format(0, 0, title, &bold)
        .map_err(e)?;
    for (c, h) in HEADERS.iter().enumerate() {
        sheet
            .write_string_with_format(1, c as u16, *h, &bold)
            .map_err(e)?;
        sheet.set_column_width(c as u16, 18).map_err(e)?;
    }
    for (i, r) in rows.iter().enumerate() {
        let row = (i + 2) as u32;
        for (c, cell) in r.cells.iter().enumerate() {
            if r.missing {
                sheet
                    .write_string_with_format(row, c as u16, cell, &red)
                    .map_err(e)?;
            } else {
                sheet.write_string(row, c as u16, cell).map_err(e)?;
            }
        }
    }
    book.save_to_buffer().map_err(e)
}

/// What the hub says of one recipient of the question (`gongwen-hub
/// status` JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubWord {
    pub state: CopyState,
    pub acknowledged_ms: Option<i64>,
    /// When the hub took the answer.
    pub answered_ms: Option<i64>,
    /// Answered after `reply_by` (or not answered and past it).
    pub late: bool,
    /// The latest answer's document id.
    pub answer: Option<DocId>,
}

/// Each recipient's [`HubWord`] from the hub's `status` answer.
pub fn hub_words(recipients: &[RecipientRow]) -> BTreeMap<String, HubWord> {
    let ms = |t: &Option<String>| rfc3339_ms(t.as_deref()?);
    recipients
        .iter()
        .map(|r| {
            (
                r.recipient.clone(),
                HubWord {
                    state: r.state.into(),
                    acknowledged_ms: ms(&r.acknowledged_at),
                    answered_ms: ms(&r.answered_at),
                    late: r.reply_state == Some(ReplyState::Late),
                    answer: r.answer.as_deref().and_then(|a| DocId::parse(a).ok()),
                },
            )
        })
        .collect()
}

/// The 汇总 of one question: the table's rows, and where each answer's
/// files are.
#[derive(Debug, Clone)]
pub struct Summary {
    /// 《title》汇总表
    pub title: String,
    pub recipients: Vec<Recipient>,
    pub rows: Vec<Row>,
    /// Each answer's folder name in a collection, and its inbox folder.
    folders: Vec<(String, PathBuf)>,
}

impl Summary {
    pub fn csv(&self) -> String {
        csv(&self.rows)
    }

    pub fn xlsx(&self) -> Result<Vec<u8>, String> {
        xlsx(&self.title, &self.rows)
    }
}

/// The 汇总 of `doc`, a document this unit sent; `None` if it asked for no
/// answers. `hub`: the hub's `status` of it, when it could be asked (its
/// times and its judgment of lateness are the ones that count). Blocking;
/// reads only.
pub fn summarize(
    me: &Identity,
    store: &Store,
    known: &Known,
    doc: DocId,
    hub: Option<&DocStatus>,
) -> Result<Option<Summary>, String> {
    let err = |e: crate::unit::store::StoreError| e.to_string();
    let sent = store
        .sent(doc)
        .map_err(err)?
        .ok_or_else(|| format!("document {doc} was not sent from this unit"))?;
    let header = store
        .header(doc)
        .map_err(err)?
        .ok_or_else(|| format!("document {doc} has no header here"))?;
    let question = SealedHeader::parse(&header).map_err(|e| e.to_string())?;
    let Some(asks) = question.meta().links.asks else {
        return Ok(None);
    };
    let reply_by_ms = asks.by.map(|d| reply_by(d, sent.sent_ms));
    let words = hub.map(|h| hub_words(&h.recipients));
    let status = crate::outgoing::status::doc_status(store, &sent).map_err(err)?;
    let answers = latest_answers(store, &sent, words.as_ref())?;
    let directory = known.get();
    let mut recipients = Vec::new();
    let mut folders = Vec::new();
    for r in &sent.recipients {
        let local = status.recipients.iter().find(|s| s.recipient == r.as_str());
        let word = words.as_ref().and_then(|w| w.get(r.as_str()));
        let name = answers
            .get(r)
            .and_then(|(rec, _)| rec.sender_name.clone())
            .or_else(|| {
                directory
                    .as_ref()
                    .map(|d| d.name_of(r).to_owned())
                    .filter(|n| n != r.as_str())
            })
            .unwrap_or_default();
        let answer = answers.get(r).map(|(rec, h)| {
            let from = me
                .folders()
                .inbox
                .join(r.as_str())
                .join(rec.doc_id.to_string());
            let answered = answered(rec, h, word, answer_files(&from));
            folders.push((folder_name(r, &name), from));
            answered
        });
        let (sign_state, signed_ms) = match word {
            Some(w) => (Some(w.state), w.acknowledged_ms),
            None => (
                local.map(|s| s.state),
                local
                    .and_then(|s| s.acknowledged_at.as_deref())
                    .and_then(rfc3339_ms),
            ),
        };
        recipients.push(Recipient {
            id: r.clone(),
            name,
            sign_state: sign_words(sign_state).to_owned(),
            signed_ms,
            answer,
        });
    }
    let rows = rows(&recipients, reply_by_ms);
    Ok(Some(Summary {
        title: format!("《{}》汇总表（北京时间）", question.meta().title),
        recipients,
        rows,
        folders,
    }))
}

/// When answers are due (Unix ms): a moment, or a span from sending.
fn reply_by(d: Deadline, sent_ms: i64) -> i64 {
    match d {
        Deadline::At(s) => s.saturating_mul(1000),
        Deadline::Within(span) => sent_ms.saturating_add(
            i64::try_from(span)
                .unwrap_or(i64::MAX / 2)
                .saturating_mul(1000),
        ),
    }
}

type AnswersBySender = BTreeMap<NodeId, (crate::unit::store::ReceivedRecord, SealedHeader)>;

/// The latest answer to `sent` from each of its recipients: the ones the
/// hub names, read by id; without the hub, found among everything
/// received.
fn latest_answers(
    store: &Store,
    sent: &crate::unit::store::SentRecord,
    words: Option<&BTreeMap<String, HubWord>>,
) -> Result<AnswersBySender, String> {
    let err = |e: crate::unit::store::StoreError| e.to_string();
    let doc = sent.doc_id;
    let is_answer =
        |rec: &crate::unit::store::ReceivedRecord| -> Result<Option<SealedHeader>, String> {
            if !sent.recipients.contains(&rec.sender) {
                return Ok(None);
            }
            let Some(h) = store.header(rec.doc_id).map_err(err)? else {
                return Ok(None);
            };
            Ok(SealedHeader::parse(&h)
                .ok()
                .filter(|h| h.meta().links.answers.is_some_and(|a| a.doc_id == doc)))
        };
    let candidates = match words {
        Some(words) => {
            let mut named = Vec::new();
            for id in words.values().filter_map(|w| w.answer) {
                if let Some((rec, _)) = store.received(id).map_err(err)? {
                    named.push(rec);
                }
            }
            named
        }
        None => store.all_received().map_err(err)?,
    };
    let mut answers = AnswersBySender::new();
    for rec in candidates {
        let Some(h) = is_answer(&rec)? else {
            continue;
        };
        let later = answers
            .get(&rec.sender)
            .is_none_or(|(have, _)| have.received_ms < rec.received_ms);
        if later {
            answers.insert(rec.sender.clone(), (rec, h));
        }
    }
    Ok(answers)
}

/// The files of an answer in its inbox folder, by name.
fn answer_files(from: &Path) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(from)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != "metadata.json")
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// One answer as the table shows it: the hub's time and judgment of
/// lateness when it has this answer, else when it arrived here.
fn answered(
    rec: &crate::unit::store::ReceivedRecord,
    h: &SealedHeader,
    word: Option<&HubWord>,
    files: Vec<String>,
) -> Answered {
    let hub_time = word.and_then(|w| w.answered_ms.map(|at| (at, w.late)));
    Answered {
        doc_id: rec.doc_id,
        at_ms: hub_time.map_or(rec.received_ms, |(at, _)| at),
        late: hub_time.map(|(_, late)| late),
        decision: h.meta().links.answers.and_then(|a| a.decision),
        note: h.meta().note.clone(),
        files,
    }
}

/// What [`collect`] wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Collected {
    pub out: PathBuf,
    pub recipients: usize,
    pub answered: usize,
}

/// Gather the answers to `doc` (a document this unit sent that asked for
/// answers) into `out`: a folder per answer and the table in both forms.
/// `hub` as for [`summarize`]. Blocking.
pub fn collect(
    me: &Identity,
    store: &Store,
    known: &Known,
    doc: DocId,
    out: &Path,
    hub: Option<&DocStatus>,
) -> Result<Collected, String> {
    let Some(summary) = summarize(me, store, known, doc, hub)? else {
        return Err(format!(
            "document {doc} asked for no answers: there is nothing to collect"
        ));
    };
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    for (name, from) in &summary.folders {
        let folder = out.join(name);
        std::fs::create_dir_all(&folder).map_err(|e| format!("{}: {e}", folder.display()))?;
        if let Ok(entries) = std::fs::read_dir(from) {
            for e in entries.flatten() {
                if e.path().is_file() {
                    std::fs::copy(e.path(), folder.join(e.file_name()))
                        .map_err(|err| format!("{}: {err}", e.path().display()))?;
                }
            }
        }
    }
    let write = |name: &str, bytes: &[u8]| {
        let path = out.join(name);
        gongwen_common::fsutil::write_atomic(&path, bytes, 0o644)
            .map_err(|e| format!("{}: {e}", path.display()))
    };
    write("汇总表.csv", summary.csv().as_bytes())?;
    write("汇总表.xlsx", &summary.xlsx()?)?;
    Ok(Collected {
        out: out.to_owned(),
        recipients: summary.recipients.len(),
        answered: summary
            .recipients
            .iter()
            .filter(|r| r.answer.is_some())
            .count(),
    })
}

/// A recipient's state, as the table says it.
fn sign_words(state: Option<CopyState>) -> &'static str {
    use gongwen_common::supervision::DeliveryState as D;
    match state {
        Some(CopyState::At(D::Acknowledged)) => "已签收",
        Some(CopyState::At(D::Delivered)) => "已送达未签收",
        Some(CopyState::At(D::Rejected)) => "已退回",
        Some(CopyState::At(D::Recalled)) => "已撤回",
        Some(CopyState::At(D::Quarantined)) => "无法打开",
        _ => "未送达",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn recipient(id: &str, answer: Option<i64>) -> Recipient {
        Recipient {
            id: NodeId::parse(id).unwrap(),
            name: format!("{id}名称"),
            sign_state: "已签收".into(),
            signed_ms: Some(1_796_112_000_000),
            answer: answer.map(|at_ms| Answered {
                doc_id: DocId::generate(),
                at_ms,
                late: None,
                decision: Some(Decision::Approved),
                note: "说明, 含逗号和\"引号\"".into(),
                files: vec!["报表.xlsx".into(), "说明.docx".into()],
            }),
        }
    }

    #[test]
    fn on_time_late_and_missing_answers_each_have_their_row() {
        let rs = rows(
            &[
                recipient("harbin-gov", Some(1_000)),
                recipient("daqing-gov", Some(9_000)),
                recipient("qiqihar-gov", None),
            ],
            Some(5_000),
        );
        assert_eq!(rs[0].cells[5], ON_TIME);
        assert_eq!(rs[1].cells[5], LATE);
        assert_eq!(rs[2].cells[5], MISSING);
        assert!(rs[2].missing && !rs[0].missing);
        assert_eq!(rs[0].cells[6], "同意");
        // Beijing time: 2026-12-01T08:00:00Z.
        assert_eq!(rs[0].cells[3], "2026-12-01 16:00:00");
        assert_eq!(rs[0].cells[8], "报表.xlsx；说明.docx");
        // No deadline: never late.
        assert_eq!(
            rows(&[recipient("a-gov", Some(i64::MAX))], None)[0].cells[5],
            ON_TIME
        );
    }

    #[test]
    fn the_hubs_judgment_of_lateness_wins_over_this_units_clock() {
        let mut r = recipient("harbin-gov", Some(1_000));
        r.answer.as_mut().unwrap().late = Some(true);
        assert_eq!(rows(&[r.clone()], Some(5_000))[0].cells[5], LATE);
        r.answer.as_mut().unwrap().late = Some(false);
        assert_eq!(rows(&[r], Some(500))[0].cells[5], ON_TIME);
        use gongwen_common::supervision::{CopyKind, DeliveryState};
        let row = |id: &str, state| RecipientRow {
            recipient: id.into(),
            copy: CopyKind::To,
            state,
            delivered_at: None,
            acknowledged_at: None,
            acknowledged_by: None,
            rejected_reason: None,
            quarantine_reason: None,
            deadline: None,
            overdue: false,
            late: false,
            urge_count: 0,
            escalation_level: 0,
            receipts: Vec::new(),
            reply_state: Some(ReplyState::Awaiting),
            decision: None,
            answered_at: None,
            answer: None,
            forwarded: Vec::new(),
        };
        let harbin = RecipientRow {
            acknowledged_at: Some("2026-12-01T08:00:00Z".into()),
            reply_state: Some(ReplyState::Late),
            answered_at: Some("2026-12-02T00:00:00Z".into()),
            answer: Some("01a24bc0-8cd2-7498-8002-36285377576f".into()),
            ..row("harbin-gov", DeliveryState::Acknowledged)
        };
        let words = hub_words(&[harbin, row("daqing-gov", DeliveryState::Delivered)]);
        let h = &words["harbin-gov"];
        assert!(h.late);
        assert_eq!(h.answered_ms, Some(1_796_169_600_000));
        assert_eq!(h.acknowledged_ms, Some(1_796_112_000_000));
        assert!(!words["daqing-gov"].late && words["daqing-gov"].answered_ms.is_none());
        assert_eq!(
            h.answer.map(|a| a.to_string()).as_deref(),
            Some("01a24bc0-8cd2-7498-8002-36285377576f")
        );
        assert_eq!(words["daqing-gov"].answer, None);
    }

    #[test]
    fn the_csv_opens_in_excel_with_its_quotes() {
        let text = csv(&rows(&[recipient("harbin-gov", Some(1))], None));
        assert!(text.starts_with("\u{feff}\"单位代码\",\"单位名称\""));
        assert!(text.contains("\"说明, 含逗号和\"\"引号\"\"\""), "{text}");
        assert_eq!(text.matches("\r\n").count(), 2);
    }

    #[test]
    fn text_from_other_units_neither_runs_nor_escapes_the_folder() {
        let mut r = recipient("harbin-gov", Some(1));
        r.answer.as_mut().unwrap().note = "=HYPERLINK(\"http://x\")".into();
        let text = csv(&rows(&[r], None));
        assert!(text.contains("\"'=HYPERLINK("), "{text}");
        let id = NodeId::parse("harbin-gov").unwrap();
        assert_eq!(folder_name(&id, "../上级/单位\n"), "harbin-gov _上级_单位_");
        assert_eq!(folder_name(&id, ""), "harbin-gov");
    }

    #[test]
    fn the_workbook_is_a_zip() {
        let bytes = xlsx("t", &rows(&[recipient("harbin-gov", None)], None)).unwrap();
        assert_eq!(&bytes[..2], b"PK");
    }
}
