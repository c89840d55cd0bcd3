//! What the supervision office (督办) asks: who has not signed for what and
//! how late, and how each unit did over a period. Pure functions over the
//! store's records and `now`.

use std::collections::BTreeMap;

use gongwen_common::NodeId;
use gongwen_common::timefmt::rfc3339;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::lifecycle::ReplyState;
use crate::store::{DeliveryRecord, DeliveryState, DocRecord};

/// A supervision question (hub control socket, or a supervisor's agent).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "query", rename_all = "snake_case")]
pub enum Query {
    Status {
        doc: gongwen_common::DocId,
    },
    /// Everything overdue: the whole list, or (with `limit`) one page of
    /// what matches the filters, as `{"items", "total", "offset"}`.
    Overdue {
        #[serde(default, skip_serializing_if = "OverdueFilter::is_empty", flatten)]
        filter: OverdueFilter,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<usize>,
        #[serde(default, skip_serializing_if = "is_zero")]
        offset: usize,
    },
    /// The units documents can be addressed to (those that published a
    /// key), with their display names, and the groups. Any unit may ask.
    Directory,
    /// Documents whose number (文号) contains this text.
    Find {
        doc_number: String,
    },
    Report {
        /// RFC 3339; documents accepted at or after.
        since: Option<String>,
        /// RFC 3339; documents accepted before.
        until: Option<String>,
    },
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Which overdue rows a supervisor asks for: empty fields match anything.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct OverdueFilter {
    /// The late unit.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub unit: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sender: String,
    /// normal, urgent or extra-urgent.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub urgency: String,
}

impl OverdueFilter {
    pub fn is_empty(&self) -> bool {
        self.unit.is_empty() && self.sender.is_empty() && self.urgency.is_empty()
    }

    pub fn matches(&self, r: &OverdueRow) -> bool {
        (self.unit.is_empty() || r.recipient == self.unit)
            && (self.sender.is_empty() || r.sender == self.sender)
            && (self.urgency.is_empty() || r.urgency.as_str() == self.urgency)
    }
}

/// The most rows one page of `overdue` holds.
pub const MAX_PAGE: usize = 500;

/// One page of the overdue rows that match `filter`: at most `limit` (and
/// [`MAX_PAGE`]) from `offset`, with how many match in all. Pure.
pub fn overdue_page(
    rows: Vec<OverdueRow>,
    filter: &OverdueFilter,
    offset: usize,
    limit: usize,
) -> (Vec<OverdueRow>, usize) {
    let matching: Vec<OverdueRow> = rows.into_iter().filter(|r| filter.matches(r)).collect();
    let total = matching.len();
    let page = matching
        .into_iter()
        .skip(offset)
        .take(limit.min(MAX_PAGE))
        .collect();
    (page, total)
}

pub fn time_ms(ms: i64) -> Option<String> {
    OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .map(rfc3339)
        .ok()
}

/// One recipient of a document, as `status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RecipientRow {
    pub recipient: String,
    /// to (主送) or cc (抄送)
    pub copy: String,
    pub state: String,
    pub delivered_at: Option<String>,
    pub acknowledged_at: Option<String>,
    pub acknowledged_by: Option<String>,
    pub rejected_reason: Option<String>,
    pub quarantine_reason: Option<String>,
    pub deadline: Option<String>,
    pub overdue: bool,
    /// Signed for or returned after the deadline.
    pub late: bool,
    pub urge_count: u32,
    pub escalation_level: u32,
    pub receipts: Vec<String>,
    /// For a document that asked for an answer: awaiting, answered, late.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_at: Option<String>,
    /// The answer's document id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
}

pub fn recipient_row(
    doc: &DocRecord,
    r: &NodeId,
    d: &DeliveryRecord,
    receipts: Vec<String>,
    now_ms: i64,
) -> RecipientRow {
    RecipientRow {
        recipient: r.to_string(),
        copy: if doc.to.contains(r) { "to" } else { "cc" }.into(),
        state: d.state.as_str().into(),
        delivered_at: d.delivered_ms.and_then(time_ms),
        acknowledged_at: d.acknowledged_ms.and_then(time_ms),
        acknowledged_by: d.acknowledged_by.clone(),
        rejected_reason: d.rejected_reason.clone(),
        quarantine_reason: (d.state == DeliveryState::Quarantined)
            .then(|| d.reason.clone())
            .flatten(),
        deadline: time_ms(d.deadline_ms),
        overdue: is_overdue(d, now_ms),
        late: d.late,
        urge_count: d.urge_count,
        escalation_level: d.escalation_level,
        receipts,
        reply_state: d
            .reply_state(doc.links.reply.is_some(), doc.links.reply_by_ms, now_ms)
            .map(|s| s.as_str().to_owned()),
        decision: d.reply.decision.map(|x| x.as_str().to_owned()),
        answered_at: d.reply.answered_ms.and_then(time_ms),
        answer: d.reply.answer_doc.clone(),
    }
}

/// Past its deadline and neither signed for, returned nor recalled.
pub fn is_overdue(d: &DeliveryRecord, now_ms: i64) -> bool {
    !d.state.is_closed() && now_ms > d.deadline_ms
}

/// One (document, recipient) past its deadline.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OverdueRow {
    pub doc_id: String,
    pub doc_number: String,
    pub title: String,
    pub sender: String,
    pub recipient: String,
    pub state: String,
    /// normal, urgent or extra-urgent.
    #[serde(default)]
    pub urgency: gongwen_common::envelope::Urgency,
    pub deadline: Option<String>,
    pub late_seconds: i64,
    pub urge_count: u32,
    pub escalation_level: u32,
    /// What is overdue: "sign-for" (签收), or "answer" (an answer asked
    /// for, past its reply_by, not given).
    #[serde(default = "sign_for")]
    pub missing: String,
}

fn sign_for() -> String {
    "sign-for".into()
}

/// A missing answer past its `reply_by`: the moment it was due.
pub fn answer_overdue(doc: &DocRecord, d: &DeliveryRecord, now_ms: i64) -> Option<i64> {
    let by = doc.links.reply_by_ms?;
    (d.reply_state(doc.links.reply.is_some(), Some(by), now_ms) == Some(ReplyState::Late)
        && d.reply.answered_ms.is_none())
    .then_some(by)
}

/// Everything overdue now, most late first.
pub fn overdue(
    data: &[(DocRecord, Vec<(NodeId, DeliveryRecord)>)],
    now_ms: i64,
) -> Vec<OverdueRow> {
    let row =
        |doc: &DocRecord, r: &NodeId, d: &DeliveryRecord, due_ms: i64, missing: &str| OverdueRow {
            doc_id: doc.doc_id.to_string(),
            doc_number: doc.doc_number.clone(),
            title: doc.title.clone(),
            sender: doc.sender.to_string(),
            recipient: r.to_string(),
            state: d.state.as_str().into(),
            urgency: doc.urgency,
            deadline: time_ms(due_ms),
            late_seconds: (now_ms - due_ms) / 1000,
            urge_count: d.urge_count,
            escalation_level: d.escalation_level,
            missing: missing.into(),
        };
    let mut rows: Vec<OverdueRow> = data
        .iter()
        .flat_map(|(doc, ds)| {
            ds.iter().flat_map(move |(r, d)| {
                let sign = is_overdue(d, now_ms).then(|| row(doc, r, d, d.deadline_ms, "sign-for"));
                let answer = answer_overdue(doc, d, now_ms).map(|by| row(doc, r, d, by, "answer"));
                sign.into_iter().chain(answer)
            })
        })
        .collect();
    rows.sort_by(|a, b| {
        b.late_seconds
            .cmp(&a.late_seconds)
            .then(a.doc_id.cmp(&b.doc_id))
    });
    rows
}

/// How one unit did as a recipient (汇总).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct UnitRow {
    pub unit: String,
    pub received: u32,
    pub acknowledged_on_time: u32,
    pub acknowledged_late: u32,
    pub rejected: u32,
    pub pending: u32,
    pub overdue_now: u32,
    /// Median seconds from the hub's acceptance to signing for.
    pub median_sign_seconds: Option<f64>,
    /// Documents that asked this unit for an answer, and how it answered.
    #[serde(default)]
    pub answers_asked: u32,
    #[serde(default)]
    pub answered_on_time: u32,
    #[serde(default)]
    pub answered_late: u32,
    /// Not answered and past reply_by.
    #[serde(default)]
    pub answers_missing: u32,
}

/// How one unit did as a sender.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SenderRow {
    pub sender: String,
    pub sent: u32,
    /// Every (not recalled) recipient signed for it.
    pub fully_acknowledged: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Report {
    pub since: Option<String>,
    pub until: Option<String>,
    pub generated_at: Option<String>,
    pub units: Vec<UnitRow>,
    pub senders: Vec<SenderRow>,
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// The report over documents accepted in `[since, until)`. Recalled copies
/// count nowhere.
pub fn report(
    data: &[(DocRecord, Vec<(NodeId, DeliveryRecord)>)],
    since_ms: Option<i64>,
    until_ms: Option<i64>,
    now_ms: i64,
) -> Report {
    let mut units: BTreeMap<String, (UnitRow, Vec<f64>)> = BTreeMap::new();
    let mut senders: BTreeMap<String, SenderRow> = BTreeMap::new();
    for (doc, ds) in data {
        if since_ms.is_some_and(|s| doc.accepted_ms < s)
            || until_ms.is_some_and(|u| doc.accepted_ms >= u)
        {
            continue;
        }
        let live: Vec<_> = ds
            .iter()
            .filter(|(_, d)| d.state != DeliveryState::Recalled)
            .collect();
        let sender = senders
            .entry(doc.sender.to_string())
            .or_insert_with(|| SenderRow {
                sender: doc.sender.to_string(),
                ..Default::default()
            });
        sender.sent += 1;
        if !live.is_empty()
            && live
                .iter()
                .all(|(_, d)| d.state == DeliveryState::Acknowledged)
        {
            sender.fully_acknowledged += 1;
        }
        for (r, d) in live {
            let (row, times) = units.entry(r.to_string()).or_insert_with(|| {
                (
                    UnitRow {
                        unit: r.to_string(),
                        ..Default::default()
                    },
                    Vec::new(),
                )
            });
            row.received += 1;
            match d.reply_state(doc.links.reply.is_some(), doc.links.reply_by_ms, now_ms) {
                None => {}
                Some(state) => {
                    row.answers_asked += 1;
                    match (state, d.reply.answered_ms) {
                        (ReplyState::Answered, _) => row.answered_on_time += 1,
                        (ReplyState::Late, Some(_)) => row.answered_late += 1,
                        (ReplyState::Late, None) => row.answers_missing += 1,
                        (ReplyState::Awaiting, _) => {}
                    }
                }
            }
            match d.state {
                DeliveryState::Acknowledged => {
                    if d.late {
                        row.acknowledged_late += 1;
                    } else {
                        row.acknowledged_on_time += 1;
                    }
                    if let Some(at) = d.acknowledged_ms {
                        times.push((at - doc.accepted_ms) as f64 / 1000.0);
                    }
                }
                DeliveryState::Rejected => row.rejected += 1,
                _ => {
                    row.pending += 1;
                    if is_overdue(d, now_ms) {
                        row.overdue_now += 1;
                    }
                }
            }
        }
    }
    Report {
        since: since_ms.and_then(time_ms),
        until: until_ms.and_then(time_ms),
        generated_at: time_ms(now_ms),
        units: units
            .into_values()
            .map(|(mut row, times)| {
                row.median_sign_seconds = median(times);
                row
            })
            .collect(),
        senders: senders.into_values().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_overdue_question_is_the_whole_list_or_one_filtered_page() {
        let whole: Query = serde_json::from_str(r#"{"query":"overdue"}"#).unwrap();
        assert_eq!(
            whole,
            Query::Overdue {
                filter: OverdueFilter::default(),
                limit: None,
                offset: 0
            }
        );
        let page: Query = serde_json::from_str(
            r#"{"query":"overdue","unit":"daqing-gov","urgency":"urgent","limit":50,"offset":100}"#,
        )
        .unwrap();
        let Query::Overdue {
            filter,
            limit,
            offset,
        } = page
        else {
            panic!("{page:?}")
        };
        assert_eq!(
            (filter.unit.as_str(), filter.urgency.as_str()),
            ("daqing-gov", "urgent")
        );
        assert_eq!((limit, offset), (Some(50), 100));
        let rows: Vec<OverdueRow> = overdue(&scenario(), 10 * H);
        let all = rows.len();
        let none = OverdueFilter {
            unit: "nobody".into(),
            ..Default::default()
        };
        assert_eq!(overdue_page(rows.clone(), &none, 0, 50), (vec![], 0));
        let (first, total) = overdue_page(rows.clone(), &OverdueFilter::default(), 0, 1);
        assert_eq!((first.len(), total), (1, all));
        assert_eq!(
            overdue_page(rows, &OverdueFilter::default(), all, 50).0,
            vec![]
        );
    }
    use gongwen_common::DocId;
    use gongwen_common::envelope::Urgency;

    const H: i64 = 3_600_000;

    fn id(s: &str) -> NodeId {
        NodeId::parse(s).unwrap()
    }

    fn doc(sender: &str, to: &[&str], accepted_ms: i64) -> DocRecord {
        DocRecord {
            doc_id: DocId::from_parts(accepted_ms as u64, [1; 10]),
            sender: id(sender),
            to: to.iter().map(|s| id(s)).collect(),
            cc: vec![],
            title: "t".into(),
            doc_number: "n".into(),
            doc_type: "通知".into(),
            urgency: Urgency::Urgent,
            deadline: None,
            created_ms: accepted_ms,
            accepted_ms,
            digest: String::new(),
            content_len: 0,
            files: vec![],
            content_removed: false,
            links: Default::default(),
        }
    }

    fn rec(
        state: DeliveryState,
        deadline_ms: i64,
        ack_ms: Option<i64>,
        late: bool,
    ) -> DeliveryRecord {
        let mut r = DeliveryRecord::queued(deadline_ms);
        r.state = state;
        r.acknowledged_ms = ack_ms;
        r.late = late;
        r
    }

    /// A report asked of four units, due at 10 s: answered on time,
    /// answered late, never answered, not yet due is not a case (all past).
    #[test]
    fn missing_and_late_answers_show_in_overdue_and_the_report() {
        use gongwen_common::links::ReplyKind;
        let mut d = doc("prov-gov", &["a-gov", "b-gov", "c-gov", "d-gov"], 0);
        d.links.reply = Some(ReplyKind::Report);
        d.links.reply_by_ms = Some(10_000);
        let signed = |answer: Option<i64>| {
            let mut r = rec(DeliveryState::Acknowledged, 100_000, Some(1_000), false);
            if let Some(at) = answer {
                r.take_reply("x", None, at, Some(10_000));
            }
            r
        };
        let data = vec![(
            d,
            vec![
                (id("a-gov"), signed(Some(5_000))),
                (id("b-gov"), signed(Some(15_000))),
                (id("c-gov"), signed(None)),
                (
                    id("d-gov"),
                    rec(DeliveryState::Rejected, 100_000, None, false),
                ),
            ],
        )];
        let now = 20_000;
        let rows = overdue(&data, now);
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(
            (rows[0].recipient.as_str(), rows[0].missing.as_str()),
            ("c-gov", "answer")
        );
        assert_eq!(rows[0].late_seconds, 10);
        let r = report(&data, None, None, now);
        let unit = |u: &str| r.units.iter().find(|x| x.unit == u).unwrap().clone();
        assert_eq!(
            (unit("a-gov").answers_asked, unit("a-gov").answered_on_time),
            (1, 1)
        );
        assert_eq!(unit("b-gov").answered_late, 1);
        assert_eq!(unit("c-gov").answers_missing, 1);
        // A returned question needs no answer.
        assert_eq!(unit("d-gov").answers_asked, 0);
        // Before the deadline nothing is missing.
        assert!(overdue(&data, 9_000).is_empty());
    }

    /// Four units, one document: on time, late, rejected, never.
    fn scenario() -> Vec<(DocRecord, Vec<(NodeId, DeliveryRecord)>)> {
        let d = doc("prov-gov", &["a-gov", "b-gov", "c-gov", "d-gov"], 0);
        vec![(
            d,
            vec![
                (
                    id("a-gov"),
                    rec(DeliveryState::Acknowledged, 4 * H, Some(H), false),
                ),
                (
                    id("b-gov"),
                    rec(DeliveryState::Acknowledged, 4 * H, Some(7 * H), true),
                ),
                (
                    id("c-gov"),
                    rec(DeliveryState::Rejected, 4 * H, None, false),
                ),
                (
                    id("d-gov"),
                    rec(DeliveryState::Delivered, 4 * H, None, false),
                ),
            ],
        )]
    }

    #[test]
    fn overdue_lists_only_the_unit_that_never_answered_with_its_lateness() {
        let rows = overdue(&scenario(), 10 * H);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].recipient, "d-gov");
        assert_eq!(rows[0].late_seconds, 6 * 3600);
        assert!(
            overdue(&scenario(), 3 * H).is_empty(),
            "nothing is overdue before the deadline"
        );
    }

    #[test]
    fn the_report_counts_each_outcome_and_the_median_time_to_sign() {
        let r = report(&scenario(), None, None, 10 * H);
        let unit = |u: &str| r.units.iter().find(|x| x.unit == u).unwrap().clone();
        assert_eq!(
            (
                unit("a-gov").acknowledged_on_time,
                unit("a-gov").median_sign_seconds
            ),
            (1, Some(3600.0))
        );
        assert_eq!(unit("b-gov").acknowledged_late, 1);
        assert_eq!(unit("c-gov").rejected, 1);
        assert_eq!((unit("d-gov").pending, unit("d-gov").overdue_now), (1, 1));
        assert_eq!(
            r.senders,
            vec![SenderRow {
                sender: "prov-gov".into(),
                sent: 1,
                fully_acknowledged: 0
            }]
        );
        // Outside the period: nothing.
        let later = report(&scenario(), Some(H), None, 10 * H);
        assert!(later.units.is_empty() && later.senders.is_empty());
    }

    #[test]
    fn median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
    }
}
