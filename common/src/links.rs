//! How a document stands to others, in its signed header: it asks its
//! recipients for an answer (请示 asks for a 批复, 通知 for a 上报), it is
//! the answer to another, or it forwards another (转发).
//!
//! ```text
//! links = (tag:u8 len:u32 body)*      tags ascending, each at most once
//! tag 1 asks      kind:u8 (1 decision, 2 report)  by:deadline
//! tag 2 answers   doc_id:16 digest:32 decision:u8 (0 none, 1 同意,
//!                 2 不同意, 3 修改后再报)  supersedes:u8 [doc_id:16]
//! tag 3 forwards  the original's signed header statement (bytes)
//! tag 4 elements  the GB/T 9704 elements ([`crate::elements`])
//! ```
//!
//! They follow the rest of the header, so a document without links is
//! byte for byte what it was before links existed. An unknown tag is an
//! error, never skipped: whatever a signed header says must be understood.

use serde::{Deserialize, Serialize};

use crate::codec::{CodecError, Reader, Writer};
use crate::deadline::Deadline;
use crate::id::DocId;

const TAG_ASKS: u8 = 1;
const TAG_ANSWERS: u8 = 2;
const TAG_FORWARDS: u8 = 3;
const TAG_ELEMENTS: u8 = 4;
/// Largest forwarded original (a header statement).
const MAX_FORWARDED: usize = 512 * 1024;

/// What kind of answer a document asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyKind {
    /// A decision (批复): 同意, 不同意 or 修改后再报.
    Decision,
    /// A report (上报): files.
    Report,
}

impl ReplyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplyKind::Decision => "decision",
            ReplyKind::Report => "report",
        }
    }

    pub fn parse(s: &str) -> Option<ReplyKind> {
        match s {
            "decision" => Some(ReplyKind::Decision),
            "report" => Some(ReplyKind::Report),
            _ => None,
        }
    }
}

/// A decision carried by an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    /// 同意
    Approved,
    /// 不同意
    NotApproved,
    /// 修改后再报
    Revise,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approved => "approved",
            Decision::NotApproved => "not-approved",
            Decision::Revise => "revise",
        }
    }

    /// The word a clerk reads.
    pub fn chinese(self) -> &'static str {
        match self {
            Decision::Approved => "同意",
            Decision::NotApproved => "不同意",
            Decision::Revise => "修改后再报",
        }
    }

    pub fn parse(s: &str) -> Option<Decision> {
        match s {
            "approved" | "同意" => Some(Decision::Approved),
            "not-approved" | "不同意" => Some(Decision::NotApproved),
            "revise" | "修改后再报" => Some(Decision::Revise),
            _ => None,
        }
    }

    fn code(self) -> u8 {
        match self {
            Decision::Approved => 1,
            Decision::NotApproved => 2,
            Decision::Revise => 3,
        }
    }
}

/// The sender asks every recipient for an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asks {
    pub kind: ReplyKind,
    /// By when; `Within` is counted by the hub from acceptance.
    pub by: Option<Deadline>,
}

/// This document answers another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answers {
    /// The document asked.
    pub doc_id: DocId,
    /// Its signed header's SHA-256 (what receipts cite).
    pub digest: [u8; 32],
    /// Present when a decision was asked.
    pub decision: Option<Decision>,
    /// An earlier answer this one corrects.
    pub supersedes: Option<DocId>,
}

/// All of a document's links; the default is none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Links {
    pub asks: Option<Asks>,
    pub answers: Option<Answers>,
    /// The original's signed header statement (kind document).
    pub forwards: Option<Vec<u8>>,
}

fn write_deadline(w: &mut Writer<'_>, d: Option<Deadline>) {
    match d {
        None => w.u8(0),
        Some(Deadline::At(s)) => {
            w.u8(1);
            w.i64(s);
        }
        Some(Deadline::Within(s)) => {
            w.u8(2);
            w.u64(s);
        }
    }
}

fn read_deadline(r: &mut Reader<'_>) -> Result<Option<Deadline>, CodecError> {
    match r.u8()? {
        0 => Ok(None),
        1 => Ok(Some(Deadline::At(r.i64()?))),
        2 => Ok(Some(Deadline::Within(r.u64()?))),
        other => Err(CodecError::BadCode {
            what: "deadline flag",
            code: other.into(),
        }),
    }
}

impl Links {
    pub fn is_empty(&self) -> bool {
        self.asks.is_none() && self.answers.is_none() && self.forwards.is_none()
    }

    /// Append the links (nothing when there are none).
    pub fn encode(&self, w: &mut Writer<'_>) {
        let mut field = |tag: u8, body: Vec<u8>| {
            w.u8(tag);
            w.bytes(&body);
        };
        if let Some(a) = self.asks {
            let mut b = Vec::new();
            let mut bw = Writer(&mut b);
            bw.u8(match a.kind {
                ReplyKind::Decision => 1,
                ReplyKind::Report => 2,
            });
            write_deadline(&mut bw, a.by);
            field(TAG_ASKS, b);
        }
        if let Some(a) = self.answers {
            let mut b = Vec::new();
            let mut bw = Writer(&mut b);
            bw.raw(a.doc_id.as_bytes());
            bw.raw(&a.digest);
            bw.u8(a.decision.map_or(0, Decision::code));
            match a.supersedes {
                None => bw.u8(0),
                Some(id) => {
                    bw.u8(1);
                    bw.raw(id.as_bytes());
                }
            }
            field(TAG_ANSWERS, b);
        }
        if let Some(original) = &self.forwards {
            field(TAG_FORWARDS, original.clone());
        }
    }

    /// Append the trailer that ends a header: the links, then the GB/T
    /// 9704 elements when there are any (nothing at all for a document
    /// with neither).
    pub fn encode_trailer(&self, elements: &crate::elements::Elements, w: &mut Writer<'_>) {
        self.encode(w);
        if !elements.is_empty() {
            w.u8(TAG_ELEMENTS);
            w.bytes(&elements.to_bytes());
        }
    }

    /// Read the trailer that ends a header (the rest of `r`): the links
    /// and the elements.
    pub fn decode_trailer(
        r: &mut Reader<'_>,
    ) -> Result<(Links, crate::elements::Elements), CodecError> {
        let mut links = Links::default();
        let mut elements = crate::elements::Elements::default();
        let mut last = 0u8;
        while r.remaining() > 0 {
            let tag = r.u8()?;
            if tag <= last {
                return Err(CodecError::BadCode {
                    what: "link tag out of order",
                    code: tag.into(),
                });
            }
            last = tag;
            let body = r.bytes(MAX_FORWARDED + 1024)?;
            let mut b = Reader::new(body);
            match tag {
                TAG_ASKS => {
                    let kind = match b.u8()? {
                        1 => ReplyKind::Decision,
                        2 => ReplyKind::Report,
                        other => {
                            return Err(CodecError::BadCode {
                                what: "reply kind",
                                code: other.into(),
                            });
                        }
                    };
                    links.asks = Some(Asks {
                        kind,
                        by: read_deadline(&mut b)?,
                    });
                }
                TAG_ANSWERS => {
                    let doc_id = DocId::from_bytes(b.array()?);
                    let digest = b.array()?;
                    let decision = match b.u8()? {
                        0 => None,
                        1 => Some(Decision::Approved),
                        2 => Some(Decision::NotApproved),
                        3 => Some(Decision::Revise),
                        other => {
                            return Err(CodecError::BadCode {
                                what: "decision",
                                code: other.into(),
                            });
                        }
                    };
                    let supersedes = match b.u8()? {
                        0 => None,
                        1 => Some(DocId::from_bytes(b.array()?)),
                        other => {
                            return Err(CodecError::BadCode {
                                what: "supersedes flag",
                                code: other.into(),
                            });
                        }
                    };
                    links.answers = Some(Answers {
                        doc_id,
                        digest,
                        decision,
                        supersedes,
                    });
                }
                TAG_FORWARDS => {
                    if body.len() > MAX_FORWARDED {
                        return Err(CodecError::TooLong {
                            len: body.len(),
                            max: MAX_FORWARDED,
                        });
                    }
                    links.forwards = Some(body.to_vec());
                    b = Reader::new(&[]);
                }
                TAG_ELEMENTS => {
                    elements = crate::elements::Elements::from_bytes(body)?;
                    b = Reader::new(&[]);
                }
                other => {
                    return Err(CodecError::BadCode {
                        what: "link (made by a newer gongwen?)",
                        code: other.into(),
                    });
                }
            }
            b.finish()?;
        }
        Ok((links, elements))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn round_trip(l: &Links) -> Links {
        let mut out = Vec::new();
        l.encode(&mut Writer(&mut out));
        let mut r = Reader::new(&out);
        let (back, elements) = Links::decode_trailer(&mut r).unwrap();
        r.finish().unwrap();
        assert!(elements.is_empty());
        back
    }

    #[test]
    fn links_read_back_and_none_take_no_bytes() {
        let mut out = Vec::new();
        Links::default().encode(&mut Writer(&mut out));
        assert!(out.is_empty());
        let full = Links {
            asks: Some(Asks {
                kind: ReplyKind::Report,
                by: Some(Deadline::Within(5 * 86400)),
            }),
            answers: Some(Answers {
                doc_id: DocId::generate(),
                digest: [7; 32],
                decision: Some(Decision::Revise),
                supersedes: Some(DocId::generate()),
            }),
            forwards: Some(vec![1, 2, 3]),
        };
        assert_eq!(round_trip(&full), full);
        let one = Links {
            answers: Some(Answers {
                doc_id: DocId::generate(),
                digest: [0; 32],
                decision: None,
                supersedes: None,
            }),
            ..Links::default()
        };
        assert_eq!(round_trip(&one), one);
    }

    #[test]
    fn unknown_repeated_or_unordered_tags_are_refused() {
        for bad in [
            vec![9u8, 0, 0, 0, 0],                       // unknown tag
            vec![3, 0, 0, 0, 1, 5, 3, 0, 0, 0, 1, 5],    // twice
            vec![3, 0, 0, 0, 1, 5, 1, 0, 0, 0, 2, 1, 0], // out of order
            vec![1, 0, 0, 0, 2, 7, 0],                   // bad kind
        ] {
            let mut r = Reader::new(&bad);
            assert!(Links::decode_trailer(&mut r).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn decisions_read_in_both_languages() {
        for d in [Decision::Approved, Decision::NotApproved, Decision::Revise] {
            assert_eq!(Decision::parse(d.as_str()), Some(d));
            assert_eq!(Decision::parse(d.chinese()), Some(d));
        }
        assert_eq!(Decision::parse("maybe"), None);
    }
}
