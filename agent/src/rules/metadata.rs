//! `metadata.json`: what a person (or a script) reads beside a document's
//! files in `sent/` and `inbox/`.

use gongwen_common::envelope::{Deadline, FileKind, Operator, SealedHeader, Urgency};
use gongwen_common::links::{Decision, ReplyKind};
use gongwen_common::pki::serial_hex;
use gongwen_common::timefmt::rfc3339;
use gongwen_common::{DocId, NodeId};
use serde::Serialize;
use time::OffsetDateTime;

#[derive(Debug, Serialize)]
pub struct FileJson {
    pub name: String,
    pub kind: FileKind,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Serialize)]
pub struct MetadataJson {
    pub doc_id: DocId,
    pub sender: NodeId,
    pub to: Vec<NodeId>,
    pub cc: Vec<NodeId>,
    pub title: String,
    pub doc_number: String,
    pub doc_type: String,
    pub urgency: Urgency,
    pub deadline: Option<String>,
    pub created_at: String,
    pub operator: Operator,
    pub note: String,
    pub secrecy: &'static str,
    pub files: Vec<FileJson>,
    /// The digest (SHA-256, or SM3 on GM) of the signed header: what receipts cite.
    pub digest: String,
    /// The algorithm of `digest` and of each file's `sha256` field: "sha256",
    /// or "sm3" in a GM deployment (the field keeps its name for the
    /// scripts that read it).
    pub digest_algorithm: &'static str,
    /// The answer asked for: "decision" (批复) or "report" (上报).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply: Option<ReplyKind>,
    /// By when (a time; a span counted by the hub is shown as such).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_by: Option<String>,
    /// The document this one answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_reply_to: Option<InReplyTo>,
    /// The original this one forwards (转发), verified: who first issued
    /// it, and its files are these.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forwarded_from: Option<ForwardedFrom>,
    /// Units it was addressed to but not sent to, with why (the sender's
    /// copy only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<crate::rules::addressing::LeftOut>,
    /// The GB/T 9704 elements the sender stated (签发人, 成文日期 …; none
    /// from older agents).
    #[serde(skip_serializing_if = "gongwen_common::elements::Elements::is_empty")]
    pub elements: gongwen_common::elements::Elements,
    /// 份号 of this unit's copy, when the sender numbered the copies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copy_no: Option<String>,
    /// 验章 on arrival: each seal of each OFD file, with the file's name
    /// (a received copy only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub seals: Vec<FileSeal>,
    /// OFD files that cannot be read (正文无法解析), with why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ofd_problems: Vec<FileProblems>,
}

/// One seal's verdict, with the file it is in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FileSeal {
    pub file: String,
    #[serde(flatten)]
    pub verdict: gongwen_ofd::SealVerdict,
}

/// Why an OFD file cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FileProblems {
    pub file: String,
    pub problems: Vec<String>,
}

/// What arrival found in a received document's OFD files, as
/// `metadata.json` keeps it: read back for the document page and for the
/// 签收 receipt (what the clerk saw).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct OfdFindings {
    #[serde(default)]
    pub seals: Vec<FileSeal>,
    #[serde(default)]
    pub ofd_problems: Vec<FileProblems>,
    /// The pages' text (for the inbox search; kept in the store, not in
    /// `metadata.json`).
    #[serde(skip)]
    pub text: String,
}

/// Most text kept for search of one document.
const MAX_SEARCH_TEXT: usize = 256 * 1024;

impl OfdFindings {
    /// From a document folder's `metadata.json` (none if unreadable).
    pub fn read(doc_dir: &std::path::Path) -> OfdFindings {
        std::fs::read(doc_dir.join("metadata.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Examine every OFD file of a document in `dir` (named as the header
    /// names them).
    pub fn examine(
        dir: &std::path::Path,
        names: &[String],
        seals: &gongwen_common::config::SealsConfig,
        now: OffsetDateTime,
    ) -> OfdFindings {
        use crate::actions::seals;
        let mut found = OfdFindings::default();
        let names: Vec<&String> = names.iter().filter(|n| seals::is_ofd(n)).collect();
        if names.is_empty() {
            return found;
        }
        let trust = seals::trust_from(seals);
        for name in names {
            let (finding, _) = match &trust {
                Ok(t) => seals::examine(&dir.join(name), name, t, now),
                Err(e) => {
                    // The roots could not be read: the seals are still
                    // checked, and the trust part says why it is missing.
                    let (mut f, i) =
                        seals::examine(&dir.join(name), name, &gongwen_ofd::SealTrust::none(), now);
                    for s in &mut f.seals {
                        if s.result == gongwen_ofd::SealResult::Unverifiable
                            && s.reason.contains("[seals] roots")
                        {
                            s.reason = format!("印章信任根无法读取（{e}）");
                        }
                    }
                    (f, i)
                }
            };
            if found.text.len() < MAX_SEARCH_TEXT {
                let room = MAX_SEARCH_TEXT - found.text.len();
                let mut end = finding.text.len().min(room);
                while !finding.text.is_char_boundary(end) {
                    end -= 1;
                }
                found.text.push_str(&finding.text[..end]);
            }
            if !finding.problems.is_empty() {
                found.ofd_problems.push(FileProblems {
                    file: name.clone(),
                    problems: finding.problems,
                });
            }
            found
                .seals
                .extend(finding.seals.into_iter().map(|verdict| FileSeal {
                    file: name.clone(),
                    verdict,
                }));
        }
        found
    }
}

#[derive(Debug, Serialize)]
pub struct ForwardedFrom {
    pub doc_id: DocId,
    pub sender: NodeId,
    pub title: String,
    pub doc_number: String,
    pub created_at: String,
    /// SHA-256 of the original's signed header.
    pub digest: String,
}

#[derive(Debug, Serialize)]
pub struct InReplyTo {
    pub doc_id: DocId,
    pub digest: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    /// 同意 / 不同意 / 修改后再报
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision_text: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub supersedes: Option<DocId>,
}

fn time_of(secs: i64) -> String {
    OffsetDateTime::from_unix_timestamp(secs)
        .map(rfc3339)
        .unwrap_or_default()
}

impl MetadataJson {
    /// `deadline`: the acknowledgment deadline as the hub set it (Unix s).
    pub fn from_sealed(h: &SealedHeader, deadline: Option<i64>) -> MetadataJson {
        let m = h.meta();
        MetadataJson {
            doc_id: m.doc_id,
            sender: m.sender.clone(),
            to: m.to.clone(),
            cc: m.cc.clone(),
            title: m.title.clone(),
            doc_number: m.doc_number.clone(),
            doc_type: m.doc_type.clone(),
            urgency: m.urgency,
            deadline: deadline.map(time_of),
            created_at: time_of(m.created_ms.div_euclid(1000)),
            operator: m.operator.clone(),
            note: m.note.clone(),
            secrecy: "none",
            files: m
                .files
                .iter()
                .map(|f| FileJson {
                    name: f.name.clone(),
                    kind: f.kind,
                    size: f.size,
                    sha256: serial_hex(&f.sha256),
                })
                .collect(),
            digest: serial_hex(&h.digest()),
            digest_algorithm: h.header.suite.digest_name(),
            reply: m.links.asks.map(|a| a.kind),
            reply_by: m.links.asks.and_then(|a| a.by).map(|d| match d {
                Deadline::At(s) => time_of(s),
                Deadline::Within(secs) => format!("{secs} s after the hub accepted it"),
            }),
            in_reply_to: m.links.answers.map(|a| InReplyTo {
                doc_id: a.doc_id,
                digest: serial_hex(&a.digest),
                decision: a.decision,
                decision_text: a.decision.map(Decision::chinese),
                supersedes: a.supersedes,
            }),
            forwarded_from: m
                .links
                .forwards
                .as_deref()
                .and_then(|o| SealedHeader::parse(o).ok())
                .map(|o| ForwardedFrom {
                    doc_id: o.meta().doc_id,
                    sender: o.meta().sender.clone(),
                    title: o.meta().title.clone(),
                    doc_number: o.meta().doc_number.clone(),
                    created_at: time_of(o.meta().created_ms.div_euclid(1000)),
                    digest: serial_hex(&o.digest()),
                }),
            left_out: Vec::new(),
            elements: m.elements.clone(),
            copy_no: None,
            seals: Vec::new(),
            ofd_problems: Vec::new(),
        }
    }

    /// The 份号 of `recipient`'s copy, if the sender numbered the copies:
    /// its place among the recipients the header lists, 主送 first.
    pub fn number_copy_for(&mut self, sealed: &SealedHeader, recipient: &NodeId) {
        self.copy_no = copy_no(sealed, recipient);
    }
}

/// The 份号 of `recipient`'s copy, if the sender numbered the copies: its
/// place among the recipients the header lists, 主送 first; in the tree
/// form (a header too large to list every key, where a copy carries only
/// its own leaf), its leaf's place, in unit-id order — the same number
/// every party computes, one per copy.
pub fn copy_no(sealed: &SealedHeader, recipient: &NodeId) -> Option<String> {
    let m = sealed.meta();
    if !m.elements.copy_numbers {
        return None;
    }
    if let Some(proof) = sealed.key_proof() {
        return Some(gongwen_common::elements::copy_number(proof.index as usize));
    }
    m.to.iter()
        .chain(&m.cc)
        .position(|r| r == recipient)
        .map(gongwen_common::elements::copy_number)
}

/// The title and document number a received document is listed and
/// headed under: its own, or for a forward (转发) those of the original it
/// carries — signed by the first issuer and verified on arrival — since a
/// forward's own title and number are whatever the forwarding unit wrote.
/// Pure.
pub fn shown_title(meta: &gongwen_common::envelope::DocMeta) -> (String, String) {
    meta.links
        .forwards
        .as_deref()
        .and_then(|o| SealedHeader::parse(o).ok())
        .map(|o| (o.meta().title.clone(), o.meta().doc_number.clone()))
        .unwrap_or_else(|| (meta.title.clone(), meta.doc_number.clone()))
}
