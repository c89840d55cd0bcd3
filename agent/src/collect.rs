//! 汇总: at the unit that asked for answers, one folder per answering unit
//! and one summary table of every recipient, answered or not —
//! `汇总表.xlsx` (the units that have not answered, 未报送, in red) and
//! `汇总表.csv` (UTF-8 with a BOM, as Excel opens it).
//!
//! The rows are a plain function of what the agent already holds (the
//! receipts of the question, the answers in its inbox); the files are
//! written from the rows.

use std::path::{Path, PathBuf};

use gongwen_common::envelope::{Deadline, SealedHeader};
use gongwen_common::links::Decision;
use gongwen_common::timefmt::rfc3339;
use gongwen_common::{DocId, NodeId};
use time::OffsetDateTime;

use crate::context::AgentContext;

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
    pub at_ms: i64,
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
    pub signed_at: Option<String>,
    pub answer: Option<Answered>,
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub cells: [String; 10],
    /// 未报送: shown in red.
    pub missing: bool,
}

fn time_ms(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map(rfc3339)
        .unwrap_or_default()
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
                    if reply_by_ms.is_some_and(|by| a.at_ms > by) {
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
                    r.signed_at.clone().unwrap_or_default(),
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
/// units (a note) that starts like a formula gets a leading apostrophe.
fn inert(cell: &str) -> String {
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

/// What [`collect`] wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Collected {
    pub out: PathBuf,
    pub recipients: usize,
    pub answered: usize,
}

/// Gather the answers to `doc` (a document this unit sent that asked for
/// answers) into `out`. Blocking.
pub fn collect(ctx: &AgentContext, doc: DocId, out: &Path) -> Result<Collected, String> {
    let store = &ctx.store;
    let err = |e: crate::store::StoreError| e.to_string();
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
        return Err(format!(
            "document {doc} asked for no answers: there is nothing to collect"
        ));
    };
    let reply_by_ms = asks.by.map(|d| match d {
        Deadline::At(s) => s.saturating_mul(1000),
        Deadline::Within(span) => sent.sent_ms.saturating_add(
            i64::try_from(span)
                .unwrap_or(i64::MAX / 2)
                .saturating_mul(1000),
        ),
    });
    let status = crate::control::doc_status(store, &sent).map_err(err)?;
    // The latest answer from each recipient.
    let mut answers: std::collections::BTreeMap<
        NodeId,
        (crate::store::ReceivedRecord, SealedHeader),
    > = Default::default();
    for rec in store.all_received().map_err(err)? {
        if !sent.recipients.contains(&rec.sender) {
            continue;
        }
        let Some(h) = store.header(rec.doc_id).map_err(err)? else {
            continue;
        };
        let Ok(h) = SealedHeader::parse(&h) else {
            continue;
        };
        if h.meta().links.answers.is_none_or(|a| a.doc_id != doc) {
            continue;
        }
        let later = answers
            .get(&rec.sender)
            .is_none_or(|(have, _)| have.received_ms < rec.received_ms);
        if later {
            answers.insert(rec.sender.clone(), (rec, h));
        }
    }
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let directory = ctx.directory.get();
    let mut recipients = Vec::new();
    for r in &sent.recipients {
        let st = status.recipients.iter().find(|s| s.recipient == r.as_str());
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
        let answer = match answers.get(r) {
            Some((rec, h)) => {
                let folder = out.join(folder_name(r, &name));
                std::fs::create_dir_all(&folder)
                    .map_err(|e| format!("{}: {e}", folder.display()))?;
                let from = ctx
                    .folders
                    .inbox
                    .join(r.as_str())
                    .join(rec.doc_id.to_string());
                let mut files = Vec::new();
                if let Ok(entries) = std::fs::read_dir(&from) {
                    for e in entries.flatten() {
                        let name = e.file_name().to_string_lossy().into_owned();
                        if e.path().is_file() {
                            std::fs::copy(e.path(), folder.join(&name))
                                .map_err(|err| format!("{}: {err}", e.path().display()))?;
                            if name != "metadata.json" {
                                files.push(name);
                            }
                        }
                    }
                }
                files.sort();
                Some(Answered {
                    doc_id: rec.doc_id,
                    at_ms: rec.received_ms,
                    decision: h.meta().links.answers.and_then(|a| a.decision),
                    note: h.meta().note.clone(),
                    files,
                })
            }
            None => None,
        };
        recipients.push(Recipient {
            id: r.clone(),
            name,
            sign_state: st
                .map(|s| sign_words(&s.state))
                .unwrap_or_default()
                .to_owned(),
            signed_at: st.and_then(|s| s.acknowledged_at.clone()),
            answer,
        });
    }
    let rows = rows(&recipients, reply_by_ms);
    let title = format!("《{}》汇总表", question.meta().title);
    let write = |name: &str, bytes: &[u8]| {
        let path = out.join(name);
        gongwen_common::fsutil::write_atomic(&path, bytes, 0o644)
            .map_err(|e| format!("{}: {e}", path.display()))
    };
    write("汇总表.csv", csv(&rows).as_bytes())?;
    write("汇总表.xlsx", &xlsx(&title, &rows)?)?;
    Ok(Collected {
        out: out.to_owned(),
        recipients: recipients.len(),
        answered: recipients.iter().filter(|r| r.answer.is_some()).count(),
    })
}

/// A recipient's state, as the table says it.
fn sign_words(state: &str) -> &'static str {
    match state {
        "acknowledged" => "已签收",
        "delivered" => "已送达未签收",
        "rejected" => "已退回",
        "recalled" => "已撤回",
        "quarantined" => "无法打开",
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
            signed_at: Some("2026-12-01T08:00:00Z".into()),
            answer: answer.map(|at_ms| Answered {
                doc_id: DocId::generate(),
                at_ms,
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
        assert_eq!(rs[0].cells[8], "报表.xlsx；说明.docx");
        // No deadline: never late.
        assert_eq!(
            rows(&[recipient("a-gov", Some(i64::MAX))], None)[0].cells[5],
            ON_TIME
        );
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
