//! What the supervision office (督办) asks: who has not signed for what and
//! how late, and how each unit did over a period. Pure functions over the
//! store's records and `now`.

use std::collections::BTreeMap;

use gongwen_common::NodeId;
pub use gongwen_common::supervision::{
    CopyKind, Missing, OverdueFilter, OverduePage, OverdueRow, Query, RecipientRow, Report,
    SenderRow, UnitRow,
};

use crate::rules::lifecycle::ReplyState;
use crate::rules::lifecycle::{DeliveryRecord, DeliveryState};
use crate::rules::records::DocRecord;

pub use gongwen_common::timefmt::rfc3339_at_ms as time_ms;

pub fn recipient_row(
    doc: &DocRecord,
    r: &NodeId,
    d: &DeliveryRecord,
    receipts: Vec<String>,
    now_ms: i64,
) -> RecipientRow {
    RecipientRow {
        recipient: r.to_string(),
        copy: if doc.to.contains(r) {
            CopyKind::To
        } else {
            CopyKind::Cc
        },
        state: d.state,
        delivered_at: d.delivered_ms.and_then(time_ms),
        acknowledged_at: d.acknowledged_ms.and_then(time_ms),
        acknowledged_by: d.acknowledged_by.clone(),
        rejected_reason: d.rejected_reason.clone(),
        quarantine_reason: (d.state == DeliveryState::Quarantined)
            .then(|| d.reason.clone())
            .flatten(),
        deadline: time_ms(d.deadline_ms),
        overdue: is_overdue(doc, r, d, now_ms),
        late: d.late,
        urge_count: d.urge_count,
        escalation_level: d.escalation_level,
        receipts,
        reply_state: d.reply_state(doc.links.reply.is_some(), doc.links.reply_by_ms, now_ms),
        decision: d.reply.decision,
        answered_at: d.reply.answered_ms.and_then(time_ms),
        answer: d.reply.answer_doc.clone(),
        forwarded: Vec::new(),
    }
}

/// Late to be signed for: a 主送 copy past its deadline and neither signed
/// for, returned nor recalled. A 抄送 copy is for information: never late
/// (the ladder does not urge it either, see [`DocRecord::main_copies`]).
pub fn is_overdue(doc: &DocRecord, r: &NodeId, d: &DeliveryRecord, now_ms: i64) -> bool {
    doc.to.contains(r) && !d.state.is_closed() && now_ms > d.deadline_ms
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
    let row = |doc: &DocRecord, r: &NodeId, d: &DeliveryRecord, due_ms: i64, missing: Missing| {
        OverdueRow {
            doc_id: doc.doc_id.to_string(),
            doc_number: doc.doc_number.clone(),
            title: doc.title.clone(),
            sender: doc.sender.to_string(),
            recipient: r.to_string(),
            state: d.state,
            urgency: doc.urgency,
            deadline: time_ms(due_ms),
            late_seconds: (now_ms - due_ms) / 1000,
            urge_count: d.urge_count,
            escalation_level: d.escalation_level,
            missing,
            recipient_revoked: false,
        }
    };
    let mut rows: Vec<OverdueRow> = data
        .iter()
        .flat_map(|(doc, ds)| {
            ds.iter().flat_map(move |(r, d)| {
                let sign = is_overdue(doc, r, d, now_ms)
                    .then(|| row(doc, r, d, d.deadline_ms, Missing::SignFor));
                let answer =
                    answer_overdue(doc, d, now_ms).map(|by| row(doc, r, d, by, Missing::Answer));
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
                    if is_overdue(doc, r, d, now_ms) {
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
            (rows[0].recipient.as_str(), rows[0].missing),
            ("c-gov", Missing::Answer)
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
    fn a_copy_for_information_is_never_overdue() {
        let mut d = doc("prov-gov", &["a-gov"], 0);
        d.cc = vec![id("cc-gov")];
        let late = |r: &str| (id(r), rec(DeliveryState::Delivered, 4 * H, None, false));
        let data = vec![(d.clone(), vec![late("a-gov"), late("cc-gov")])];
        let rows = overdue(&data, 10 * H);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].recipient, "a-gov");
        let report = report(&data, None, None, 10 * H);
        let unit = |u: &str| report.units.iter().find(|x| x.unit == u).unwrap().clone();
        assert_eq!(
            (unit("a-gov").overdue_now, unit("cc-gov").overdue_now),
            (1, 0)
        );
        let (cc, copy) = late("cc-gov");
        assert!(!recipient_row(&d, &cc, &copy, vec![], 10 * H).overdue);
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
