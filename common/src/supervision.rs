//! What the hub says about documents and units, as types both sides share:
//! the hub builds these answers and a unit's agent (its console, `collect`,
//! its command line) reads them back as the same types. A field renamed on
//! one side is a compile error on the other, never an empty column.
//!
//! - [`DeliveryState`], [`ReplyState`] — where one recipient's copy stands.
//! - [`Query`] — the questions (`status`, `overdue`, `report`, …).
//! - [`DocStatus`] — one document and each recipient's [`RecipientRow`].
//! - [`OverdueRow`], [`OverduePage`] — what is past its deadline.
//! - [`Report`] — how each unit did.
//! - [`AddressBook`] — the units and groups documents can be sent to.

use serde::{Deserialize, Serialize};

use crate::envelope::Urgency;
use crate::id::{DocId, NodeId};
use crate::links::{Decision, ReplyKind};

/// Where one recipient's copy stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Queued,
    Delivered,
    Quarantined,
    Acknowledged,
    Rejected,
    Recalled,
}

impl DeliveryState {
    /// No more urging: signed for, returned or withdrawn.
    pub fn is_closed(self) -> bool {
        matches!(
            self,
            DeliveryState::Acknowledged | DeliveryState::Rejected | DeliveryState::Recalled
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Queued => "queued",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Quarantined => "quarantined",
            DeliveryState::Acknowledged => "acknowledged",
            DeliveryState::Rejected => "rejected",
            DeliveryState::Recalled => "recalled",
        }
    }
}

/// Where a recipient stands with an answer asked of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyState {
    /// Not answered, and `reply_by` (if any) not passed.
    Awaiting,
    /// Answered (on time, or with no `reply_by`).
    Answered,
    /// Answered after `reply_by`, or not answered and past it.
    Late,
}

impl ReplyState {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplyState::Awaiting => "awaiting",
            ReplyState::Answered => "answered",
            ReplyState::Late => "late",
        }
    }
}

/// A main recipient (主送) or a copy (抄送).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CopyKind {
    To,
    Cc,
}

impl CopyKind {
    pub fn chinese(self) -> &'static str {
        match self {
            CopyKind::To => "主送",
            CopyKind::Cc => "抄送",
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// A supervision question (hub control socket, or a unit's agent).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "query", rename_all = "snake_case")]
pub enum Query {
    Status {
        doc: DocId,
    },
    /// Everything overdue: the whole list, or (with `limit`) one page of
    /// what matches the filters, as an [`OverduePage`].
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
    /// With `since`, the version of the book the asker holds: the answer
    /// is then `{"unchanged": true, "version": …}` when nothing changed
    /// (see [`DirectoryAnswer`]). A hub that predates versions ignores it
    /// and answers the whole book.
    Directory {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<String>,
    },
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
    /// The copies of `doc` that units passed on (转发), as a list of
    /// [`ForwardedBy`]: what `status` shows of the cascade beyond this
    /// hub, asked of the next hub on the way by a peer hub. `hops`: how
    /// many hubs further the one asked may ask in turn.
    Cascade {
        doc: DocId,
        #[serde(default)]
        hops: u8,
    },
    /// A 督办单 from a supervision office: urge `units` (every unit that
    /// has not signed for `doc`, if none) in the office's name and words.
    /// Counted as an urging; answered with the units urged.
    Press {
        doc: DocId,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        units: Vec<NodeId>,
        words: String,
    },
}

/// The longest 督办单 text (characters).
pub const MAX_PRESS_WORDS: usize = 500;

impl Query {
    /// The whole overdue list.
    pub fn overdue() -> Query {
        Query::Overdue {
            filter: OverdueFilter::default(),
            limit: None,
            offset: 0,
        }
    }

    /// As JSON bytes, for the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// One recipient of a document, as `status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RecipientRow {
    pub recipient: String,
    pub copy: CopyKind,
    pub state: DeliveryState,
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
    /// For a document that asked for an answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_state: Option<ReplyState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_at: Option<String>,
    /// The answer's document id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// Copies this recipient passed on (转发), and where each stands.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forwarded: Vec<ForwardedCopy>,
}

/// A document a recipient forwarded (转发), as its original's status shows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ForwardedCopy {
    pub doc_id: DocId,
    pub accepted_at: Option<String>,
    pub recipients: Vec<ForwardedRecipient>,
}

/// A copy a unit passed on (转发), as a `cascade` query answers it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ForwardedBy {
    /// The unit that passed it on.
    pub by: String,
    #[serde(flatten)]
    pub copy: ForwardedCopy,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ForwardedRecipient {
    pub recipient: String,
    pub state: DeliveryState,
    pub acknowledged_at: Option<String>,
}

/// A file of a document, as the hub keeps it (never its content).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileRow {
    pub name: String,
    pub kind: String,
    pub size: u64,
}

/// `status`: one document and each recipient's copy.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DocStatus {
    pub doc_id: DocId,
    /// The original it forwards (转发).
    pub forwards: Option<DocId>,
    pub sender: NodeId,
    pub to: Vec<NodeId>,
    pub cc: Vec<NodeId>,
    pub title: String,
    pub doc_number: String,
    pub doc_type: String,
    pub urgency: Urgency,
    pub created_at: Option<String>,
    pub accepted_at: Option<String>,
    pub digest: String,
    pub content_len: u64,
    pub content_removed: bool,
    pub files: Vec<FileRow>,
    pub reply: Option<ReplyKind>,
    pub reply_by: Option<String>,
    pub answers: Option<DocId>,
    pub decision: Option<Decision>,
    pub recipients: Vec<RecipientRow>,
    /// Copies passed on (转发) further down the cascade, by units this
    /// document did not go to directly (a forward of a forward names the
    /// first issuer's document).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forwarded_further: Vec<ForwardedBy>,
    /// The other domains' hubs that could not be asked what their units
    /// passed on (转发), each with why: the cascade shown is then partial.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cascade_unknown: Vec<String>,
}

/// What an overdue row lacks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Missing {
    /// Signing for it (签收).
    #[default]
    #[serde(rename = "sign-for")]
    SignFor,
    /// The answer it asked for, past its `reply_by`.
    #[serde(rename = "answer")]
    Answer,
}

impl Missing {
    pub fn chinese(self) -> &'static str {
        match self {
            Missing::SignFor => "未签收",
            Missing::Answer => "未答复",
        }
    }
}

/// One (document, recipient) past its deadline.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OverdueRow {
    pub doc_id: String,
    pub doc_number: String,
    pub title: String,
    pub sender: String,
    pub recipient: String,
    pub state: DeliveryState,
    #[serde(default)]
    pub urgency: Urgency,
    pub deadline: Option<String>,
    pub late_seconds: i64,
    pub urge_count: u32,
    pub escalation_level: u32,
    #[serde(default)]
    pub missing: Missing,
    /// The late unit's certificate has been revoked.
    #[serde(default, skip_serializing_if = "is_false")]
    pub recipient_revoked: bool,
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
    /// The late unit is any of these (what a supervisor's typed name
    /// matched in the directory: 大庆 → daqing-gov, daqing-edu).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub units: Vec<String>,
    /// The sender is any of these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub senders: Vec<String>,
}

impl OverdueFilter {
    pub fn is_empty(&self) -> bool {
        self.unit.is_empty()
            && self.sender.is_empty()
            && self.urgency.is_empty()
            && self.units.is_empty()
            && self.senders.is_empty()
    }

    pub fn matches(&self, r: &OverdueRow) -> bool {
        (self.unit.is_empty() || r.recipient == self.unit)
            && (self.sender.is_empty() || r.sender == self.sender)
            && (self.urgency.is_empty() || r.urgency.as_str() == self.urgency)
            && (self.units.is_empty() || self.units.contains(&r.recipient))
            && (self.senders.is_empty() || self.senders.contains(&r.sender))
    }
}

/// The most rows one page of `overdue` holds.
pub const MAX_PAGE: usize = 500;

/// One page of the overdue list.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct OverduePage {
    pub items: Vec<OverdueRow>,
    /// How many rows match in all.
    pub total: usize,
    pub offset: usize,
}

impl OverduePage {
    /// The rows that match `filter`: at most `limit` (and [`MAX_PAGE`])
    /// from `offset`, with how many match in all. Pure.
    pub fn of(rows: Vec<OverdueRow>, filter: &OverdueFilter, offset: usize, limit: usize) -> Self {
        let matching: Vec<OverdueRow> = rows.into_iter().filter(|r| filter.matches(r)).collect();
        let total = matching.len();
        let items = matching
            .into_iter()
            .skip(offset)
            .take(limit.min(MAX_PAGE))
            .collect();
        OverduePage {
            items,
            total,
            offset,
        }
    }
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
    /// Its certificate has been revoked.
    #[serde(default, skip_serializing_if = "is_false")]
    pub revoked: bool,
}

/// How one unit did as a sender.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SenderRow {
    pub sender: String,
    pub sent: u32,
    /// Every (not recalled) recipient signed for it.
    pub fully_acknowledged: u32,
}

/// `report`: per unit and per sender, over a period.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Report {
    pub since: Option<String>,
    pub until: Option<String>,
    pub generated_at: Option<String>,
    pub units: Vec<UnitRow>,
    pub senders: Vec<SenderRow>,
}

/// A document whose number matched a `find`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Found {
    pub doc_id: DocId,
    pub doc_number: String,
    pub title: String,
    pub sender: NodeId,
    pub accepted_at: Option<String>,
}

/// A unit documents can be addressed to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressEntry {
    pub id: NodeId,
    /// 哈尔滨市人民政府, from the CA's directory or its certificate.
    #[serde(default)]
    pub name: Option<String>,
    /// Its certificate has been revoked: nothing can be sent to it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub revoked: bool,
}

/// A group of units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupEntry {
    pub name: String,
    pub members: Vec<NodeId>,
}

/// The hub's acknowledgment deadlines by urgency (seconds after it
/// accepts a document that names no deadline of its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadlineSpans {
    pub normal: u64,
    pub urgent: u64,
    pub extra_urgent: u64,
}

impl DeadlineSpans {
    /// The deadline (Unix s) of a document of `urgency` that names none,
    /// accepted at `accepted_ms`: the rule the hub applies.
    pub fn deadline(&self, urgency: Urgency, accepted_ms: i64) -> Option<i64> {
        let span = match urgency {
            Urgency::Normal => self.normal,
            Urgency::Urgent => self.urgent,
            Urgency::ExtraUrgent => self.extra_urgent,
        };
        Some(
            accepted_ms
                .div_euclid(1000)
                .saturating_add(i64::try_from(span).ok()?),
        )
    }
}

/// `directory`: the units and groups documents can be sent to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressBook {
    /// The hub's version of this book (absent from older hubs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default)]
    pub units: Vec<AddressEntry>,
    #[serde(default)]
    pub groups: Vec<GroupEntry>,
    #[serde(default)]
    pub deadlines: Option<DeadlineSpans>,
}

/// The answer to [`Query::Directory`]: the book, or word that the asker's
/// version is still current.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum DirectoryAnswer {
    Unchanged { unchanged: bool, version: String },
    Book(AddressBook),
}

impl AddressBook {
    /// The deadline (Unix s) the hub sets for a document of `urgency` that
    /// names none, accepted at `accepted_ms`.
    pub fn default_deadline(&self, urgency: Urgency, accepted_ms: i64) -> Option<i64> {
        self.deadlines?.deadline(urgency, accepted_ms)
    }

    /// A unit's display name, or its id.
    pub fn name_of<'a>(&'a self, id: &'a NodeId) -> &'a str {
        self.units
            .iter()
            .find(|u| &u.id == id)
            .and_then(|u| u.name.as_deref())
            .unwrap_or(id.as_str())
    }

    /// Whether `name` is a unit or group documents can be sent to.
    pub fn knows(&self, name: &str) -> bool {
        self.units.iter().any(|u| u.id.as_str() == name)
            || self.groups.iter().any(|g| g.name == name)
    }

    /// The units that can be offered as recipients: all but `me` and the
    /// revoked.
    pub fn offered<'a>(&'a self, me: &'a NodeId) -> impl Iterator<Item = &'a AddressEntry> + 'a {
        self.units.iter().filter(move |u| &u.id != me && !u.revoked)
    }

    /// Whether `id` is a unit whose certificate was revoked.
    pub fn is_revoked(&self, id: &str) -> bool {
        self.units.iter().any(|u| u.id.as_str() == id && u.revoked)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_overdue_question_is_the_whole_list_or_one_filtered_page() {
        let whole: Query = serde_json::from_str(r#"{"query":"overdue"}"#).unwrap();
        assert_eq!(whole, Query::overdue());
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
        // And back: what the agent sends is what the hub reads.
        let q = Query::Overdue {
            filter,
            limit,
            offset,
        };
        assert_eq!(serde_json::from_slice::<Query>(&q.to_bytes()).unwrap(), q);
    }

    #[test]
    fn directory_questions_and_answers_read_across_versions() {
        // An agent of before versions asks without `since`; the hub reads it.
        let old: Query = serde_json::from_str(r#"{"query":"directory"}"#).unwrap();
        assert_eq!(old, Query::Directory { since: None });
        let q = Query::Directory {
            since: Some("ab12".into()),
        };
        assert_eq!(serde_json::from_slice::<Query>(&q.to_bytes()).unwrap(), q);
        // A hub of before versions: a book without a version is a book.
        let a: DirectoryAnswer = serde_json::from_str(r#"{"units":[],"groups":[]}"#).unwrap();
        assert_eq!(a, DirectoryAnswer::Book(AddressBook::default()));
        let a: DirectoryAnswer =
            serde_json::from_str(r#"{"unchanged":true,"version":"ab12"}"#).unwrap();
        assert_eq!(
            a,
            DirectoryAnswer::Unchanged {
                unchanged: true,
                version: "ab12".into()
            }
        );
        let a: DirectoryAnswer =
            serde_json::from_str(r#"{"version":"cd34","units":[{"id":"harbin-gov"}]}"#).unwrap();
        let DirectoryAnswer::Book(book) = a else {
            panic!("{a:?}")
        };
        assert_eq!(book.version.as_deref(), Some("cd34"));
        assert_eq!(book.units.len(), 1);
    }

    fn row(recipient: &str, urgency: Urgency) -> OverdueRow {
        OverdueRow {
            doc_id: "d".into(),
            doc_number: String::new(),
            title: "t".into(),
            sender: "prov-gov".into(),
            recipient: recipient.into(),
            state: DeliveryState::Delivered,
            urgency,
            deadline: None,
            late_seconds: 60,
            urge_count: 0,
            escalation_level: 0,
            missing: Missing::SignFor,
            recipient_revoked: false,
        }
    }

    #[test]
    fn a_page_of_overdue_rows_is_filtered_then_cut() {
        let rows: Vec<OverdueRow> = (0..7)
            .map(|i| {
                row(
                    if i % 2 == 0 {
                        "daqing-gov"
                    } else {
                        "harbin-gov"
                    },
                    Urgency::Normal,
                )
            })
            .collect();
        let daqing = OverdueFilter {
            unit: "daqing-gov".into(),
            ..Default::default()
        };
        let p = OverduePage::of(rows.clone(), &daqing, 2, 10);
        assert_eq!((p.items.len(), p.total, p.offset), (2, 4, 2));
        let urgent = OverdueFilter {
            urgency: "urgent".into(),
            ..Default::default()
        };
        assert_eq!(OverduePage::of(rows.clone(), &urgent, 0, 10).total, 0);
        assert_eq!(
            OverduePage::of(rows, &OverdueFilter::default(), 0, 100_000)
                .items
                .len(),
            7
        );
    }

    #[test]
    fn rows_keep_the_json_the_command_lines_print() {
        let r = row("daqing-gov", Urgency::Urgent);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["state"], "delivered");
        assert_eq!(v["missing"], "sign-for");
        assert_eq!(v["urgency"], "urgent");
        assert!(v.get("recipient_revoked").is_none(), "left out when false");
        let back: OverdueRow = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn the_default_deadline_follows_the_urgency() {
        let spans = DeadlineSpans {
            normal: 86_400,
            urgent: 14_400,
            extra_urgent: 3_600,
        };
        assert_eq!(
            spans.deadline(Urgency::Urgent, 1_000_000),
            Some(1_000 + 14_400)
        );
        let book = AddressBook {
            deadlines: Some(spans),
            ..Default::default()
        };
        assert_eq!(book.default_deadline(Urgency::ExtraUrgent, 0), Some(3_600));
        assert_eq!(
            AddressBook::default().default_deadline(Urgency::Normal, 0),
            None
        );
    }
}
