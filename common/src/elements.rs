//! The elements of a 公文 that GB/T 9704-2012 fixes beyond what every
//! document here already carries (标题, 发文字号, 主送, 抄送, 紧急程度, 附注):
//! 发文机关署名, 签发人, 成文日期, 份号, 附件说明, 印发机关 and 印发日期, and
//! the 公开属性 the 办法 asks for. They travel signed, in the header's
//! trailer (tag 4, after the links: see [`crate::links`]), so a document
//! without them is byte for byte what it was before they existed, and one
//! from an older agent opens with none.
//!
//! ```text
//! elements = version:u8 (1)
//!            issuers:list  signers:list  written_on:str  copy_numbers:u8
//!            attachments_note:list  printed_by:str  printed_on:str
//!            publicity:u8 (0 none, 1 主动公开, 2 依申请公开, 3 不予公开)
//! list     = count:u16 str*
//! ```

use serde::{Deserialize, Serialize};

use crate::codec::{CodecError, Reader, Writer};

/// The 15 kinds of 公文 of the 党政机关公文处理工作条例 (第八条).
pub const DOC_TYPES: [&str; 15] = [
    "决议", "决定", "命令", "公报", "公告", "通告", "意见", "通知", "通报", "报告", "请示", "批复",
    "议案", "函", "纪要",
];

/// 上行文 that the 条例 (第二十四条) has signed by a 签发人: refused without.
pub const NEEDS_SIGNER: [&str; 2] = ["请示", "报告"];

const VERSION: u8 = 1;
/// Most issuing organs of one 联合行文, signers, attachment lines.
const MAX_LIST: usize = 32;
const MAX_ORGAN_CHARS: usize = 64;
const MAX_SIGNER_CHARS: usize = 32;
const MAX_NOTE_LINE_CHARS: usize = 200;

/// 公开属性.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Publicity {
    #[serde(rename = "主动公开")]
    Public,
    #[serde(rename = "依申请公开")]
    OnRequest,
    #[serde(rename = "不予公开")]
    NotPublic,
}

impl Publicity {
    pub fn chinese(self) -> &'static str {
        match self {
            Publicity::Public => "主动公开",
            Publicity::OnRequest => "依申请公开",
            Publicity::NotPublic => "不予公开",
        }
    }

    pub fn parse(s: &str) -> Option<Publicity> {
        match s.trim() {
            "主动公开" | "public" => Some(Publicity::Public),
            "依申请公开" | "on-request" => Some(Publicity::OnRequest),
            "不予公开" | "not-public" => Some(Publicity::NotPublic),
            _ => None,
        }
    }

    fn code(p: Option<Publicity>) -> u8 {
        match p {
            None => 0,
            Some(Publicity::Public) => 1,
            Some(Publicity::OnRequest) => 2,
            Some(Publicity::NotPublic) => 3,
        }
    }

    fn from_code(c: u8) -> Result<Option<Publicity>, CodecError> {
        Ok(match c {
            0 => None,
            1 => Some(Publicity::Public),
            2 => Some(Publicity::OnRequest),
            3 => Some(Publicity::NotPublic),
            other => {
                return Err(CodecError::BadCode {
                    what: "publicity",
                    code: other.into(),
                });
            }
        })
    }
}

/// The GB/T 9704 elements a document states; the default states none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Elements {
    /// 发文机关署名: one organ, or several (联合行文).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub issuers: Vec<String>,
    /// 签发人.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signers: Vec<String>,
    /// 成文日期, YYYY-MM-DD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written_on: Option<String>,
    /// 份号: each recipient's copy numbered (see [`copy_number`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub copy_numbers: bool,
    /// 附件说明: the attachments' titles, in the order of the files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments_note: Vec<String>,
    /// 印发机关.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub printed_by: String,
    /// 印发日期, YYYY-MM-DD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub printed_on: Option<String>,
    /// 公开属性.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publicity: Option<Publicity>,
}

/// A 份号 as GB/T 9704 prints it: six digits, from 000001.
pub fn copy_number(index: usize) -> String {
    format!("{:06}", index + 1)
}

fn write_list(w: &mut Writer<'_>, list: &[String]) {
    w.u16(list.len().min(MAX_LIST) as u16);
    for s in list.iter().take(MAX_LIST) {
        w.str(s);
    }
}

fn read_list(r: &mut Reader<'_>) -> Result<Vec<String>, CodecError> {
    let n = usize::from(r.u16()?);
    if n > MAX_LIST {
        return Err(CodecError::TooLong {
            len: n,
            max: MAX_LIST,
        });
    }
    (0..n).map(|_| r.string()).collect()
}

fn opt(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// Whether `s` is a date written YYYY-MM-DD that exists.
fn is_date(s: &str) -> bool {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &format).is_ok()
}

impl Elements {
    pub fn is_empty(&self) -> bool {
        *self == Elements::default()
    }

    /// The trailer body (tag 4).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = Writer(&mut out);
        w.u8(VERSION);
        write_list(&mut w, &self.issuers);
        write_list(&mut w, &self.signers);
        w.str(self.written_on.as_deref().unwrap_or(""));
        w.u8(u8::from(self.copy_numbers));
        write_list(&mut w, &self.attachments_note);
        w.str(&self.printed_by);
        w.str(self.printed_on.as_deref().unwrap_or(""));
        w.u8(Publicity::code(self.publicity));
        out
    }

    pub fn from_bytes(body: &[u8]) -> Result<Elements, CodecError> {
        let mut r = Reader::new(body);
        let version = r.u8()?;
        if version != VERSION {
            return Err(CodecError::BadCode {
                what: "elements version (made by a newer gongwen?)",
                code: version.into(),
            });
        }
        let e = Elements {
            issuers: read_list(&mut r)?,
            signers: read_list(&mut r)?,
            written_on: opt(r.string()?),
            copy_numbers: match r.u8()? {
                0 => false,
                1 => true,
                other => {
                    return Err(CodecError::BadCode {
                        what: "copy numbers flag",
                        code: other.into(),
                    });
                }
            },
            attachments_note: read_list(&mut r)?,
            printed_by: r.string()?,
            printed_on: opt(r.string()?),
            publicity: Publicity::from_code(r.u8()?)?,
        };
        r.finish()?;
        Ok(e)
    }

    /// What a sender must get right, in a clerk's words: lengths, dates,
    /// one 附件说明 line per attachment (`attachments` files), and for a
    /// `new_document` (not an answer or a 转发, whose 文种 comes from the
    /// question or the original) a 文种 of the 15 and, for the kinds the
    /// 条例 has signed (请示, 报告), a 签发人.
    pub fn check(
        &self,
        doc_type: &str,
        attachments: usize,
        new_document: bool,
    ) -> Result<(), String> {
        let text = |what: &str, s: &str, max: usize| -> Result<(), String> {
            if s.trim().is_empty() {
                return Err(format!("{what}不能为空。"));
            }
            if s.chars().count() > max {
                return Err(format!("{what}“{s}”太长（最多 {max} 个字）。"));
            }
            if s.chars().any(char::is_control) {
                return Err(format!("{what}中有控制字符。"));
            }
            Ok(())
        };
        for (what, list, max) in [
            ("发文机关署名", &self.issuers, MAX_ORGAN_CHARS),
            ("签发人", &self.signers, MAX_SIGNER_CHARS),
            ("附件说明", &self.attachments_note, MAX_NOTE_LINE_CHARS),
        ] {
            if list.len() > MAX_LIST {
                return Err(format!("{what}最多 {MAX_LIST} 项。"));
            }
            for s in list {
                text(what, s, max)?;
            }
        }
        if !self.printed_by.is_empty() {
            text("印发机关", &self.printed_by, MAX_ORGAN_CHARS)?;
        }
        for (what, date) in [
            ("成文日期", &self.written_on),
            ("印发日期", &self.printed_on),
        ] {
            if let Some(d) = date
                && !is_date(d)
            {
                return Err(format!("{what}“{d}”不是日期：请写成 2026-12-01 的样子。"));
            }
        }
        if !self.attachments_note.is_empty() && self.attachments_note.len() != attachments {
            return Err(format!(
                "附件说明有 {} 项，附件却有 {attachments} 个：附件说明应按顺序逐一写明每个附件的名称。",
                self.attachments_note.len()
            ));
        }
        let kind = doc_type.trim();
        if !new_document {
            return Ok(());
        }
        if !kind.is_empty() && !DOC_TYPES.contains(&kind) {
            return Err(format!(
                "文种“{kind}”不是《党政机关公文处理工作条例》规定的 15 种之一：{}。",
                DOC_TYPES.join("、")
            ));
        }
        if NEEDS_SIGNER.contains(&kind) && self.signers.is_empty() {
            return Err(format!(
                "{kind}是上行文，须写明签发人（附注文件中写 signer = \"姓名\"，或在拟稿页填写）。"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn full() -> Elements {
        Elements {
            issuers: vec!["黑龙江省人民政府".into(), "黑龙江省财政厅".into()],
            signers: vec!["王一".into()],
            written_on: Some("2026-12-01".into()),
            copy_numbers: true,
            attachments_note: vec!["1. 工作方案".into(), "2. 经费预算表".into()],
            printed_by: "黑龙江省人民政府办公厅".into(),
            printed_on: Some("2026-12-02".into()),
            publicity: Some(Publicity::OnRequest),
        }
    }

    #[test]
    fn elements_read_back_and_a_newer_version_is_refused() {
        let e = full();
        assert_eq!(Elements::from_bytes(&e.to_bytes()).unwrap(), e);
        let none = Elements::default();
        assert!(none.is_empty());
        assert_eq!(Elements::from_bytes(&none.to_bytes()).unwrap(), none);
        let mut newer = e.to_bytes();
        newer[0] = 2;
        assert!(Elements::from_bytes(&newer).is_err());
        let mut longer = e.to_bytes();
        longer.push(0);
        assert!(Elements::from_bytes(&longer).is_err(), "trailing bytes");
        let mut bad = e.to_bytes();
        let last = bad.len() - 1;
        bad[last] = 9;
        assert!(Elements::from_bytes(&bad).is_err(), "an unknown publicity");
    }

    #[test]
    fn the_rules_a_sender_must_keep_are_said_in_chinese() {
        assert!(full().check("通知", 2, true).is_ok());
        let e = full().check("通知", 3, true).unwrap_err();
        assert!(e.contains("附件说明有 2 项，附件却有 3 个"), "{e}");
        let e = full().check("简报", 2, true).unwrap_err();
        assert!(
            e.contains("不是《党政机关公文处理工作条例》规定的 15 种之一"),
            "{e}"
        );
        let unsigned = Elements {
            signers: vec![],
            ..full()
        };
        let e = unsigned.check("请示", 2, true).unwrap_err();
        assert!(e.contains("请示是上行文，须写明签发人"), "{e}");
        assert!(
            unsigned.check("报告", 2, false).is_ok(),
            "an answer or a 转发 is not held to it"
        );
        assert!(Elements::default().check("", 0, true).is_ok());
        let dated = Elements {
            written_on: Some("2026-02-30".into()),
            ..Elements::default()
        };
        assert!(
            dated
                .check("通知", 0, true)
                .unwrap_err()
                .contains("成文日期")
        );
        assert_eq!(copy_number(0), "000001");
        assert_eq!(Publicity::parse("主动公开"), Some(Publicity::Public));
    }
}
