//! From a claimed drop to a draft: what the clerk asked for, checked.
//!
//! A drop is `outbox/<to>/<file>` (one main text) or `outbox/<to>/<folder>/`
//! (a main text and attachments), with an optional sidecar
//! `<file>.meta.toml` / `<folder>.meta.toml`:
//!
//! ```toml
//! title      = "关于做好冬季安全生产工作的通知"   # default: the file or folder name
//! doc_number = "黑政发〔2026〕12号"
//! doc_type   = "通知"
//! urgency    = "urgent"                         # normal | urgent | extra-urgent (平件/加急/特急)
//! deadline   = "2027-03-01T17:00:00+08:00"      # or a span after the hub accepts it: "3d"
//! to         = ["daqing-gov"]                   # more main recipients
//! cc         = ["prov-finance"]                 # copies (抄送)
//! note       = "请于12月1日前反馈"
//! operator   = "张三"                            # 经办人
//! phone      = "0451-12345678"
//! secrecy    = "none"                           # anything else is refused
//! main       = "正文.pdf"                        # folder drops: which file is the main text
//! reply      = "decision"                       # ask each recipient for an answer: decision | report
//! reply_by   = "5d"                             # by when (a time, or a span after acceptance)
//! in_reply_to = "01a2…"                         # this answers a received document (its id)
//! decision   = "approved"                       # the answer's decision: approved | not-approved | revise
//! supersedes = "01a3…"                          # this answer corrects an earlier one
//! issuer     = ["黑龙江省人民政府办公厅"]          # 发文机关署名; several = 联合行文
//! signer     = "王一"                            # 签发人 (or a list); required for 请示, 报告
//! written_on = "2026-12-01"                     # 成文日期
//! copy_no    = true                             # 份号, numbered per recipient copy
//! attachments_note = ["1. 工作方案"]              # 附件说明, one per attachment, in file order
//! printed_by = "黑龙江省人民政府办公厅"            # 印发机关
//! printed_on = "2026-12-02"                     # 印发日期
//! publicity  = "主动公开"                        # 主动公开 | 依申请公开 | 不予公开
//! ```

use std::path::{Path, PathBuf};

use gongwen_common::DocId;
use gongwen_common::elements::{Elements, Publicity};
use gongwen_common::envelope::{
    Deadline, FileKind, MAX_TITLE_CHARS, Operator, Urgency, check_file_name, check_secrecy,
};
use gongwen_common::links::{Asks, Decision, ReplyKind};
use gongwen_common::timefmt::{parse_duration, parse_rfc3339};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The sidecar as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sidecar {
    pub title: Option<String>,
    pub doc_number: Option<String>,
    pub doc_type: Option<String>,
    pub urgency: Option<String>,
    pub deadline: Option<toml::Value>,
    #[serde(default)]
    pub to: Names,
    #[serde(default)]
    pub cc: Names,
    pub note: Option<String>,
    pub operator: Option<String>,
    pub phone: Option<String>,
    pub secrecy: Option<String>,
    pub main: Option<String>,
    pub reply: Option<String>,
    pub reply_by: Option<toml::Value>,
    pub in_reply_to: Option<String>,
    pub decision: Option<String>,
    pub supersedes: Option<String>,
    pub forward_of: Option<String>,
    // The GB/T 9704 elements (see gongwen_common::elements).
    #[serde(default)]
    pub issuer: Names,
    #[serde(default)]
    pub signer: Names,
    pub written_on: Option<toml::Value>,
    pub copy_no: Option<bool>,
    #[serde(default)]
    pub attachments_note: Names,
    pub printed_by: Option<String>,
    pub printed_on: Option<toml::Value>,
    pub publicity: Option<String>,
}

/// One name or a list of names.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(untagged)]
pub enum Names {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl Names {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Names::None => vec![],
            Names::One(s) => vec![s],
            Names::Many(v) => v,
        }
    }
}

/// Why a drop cannot become a document; each says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DraftError {
    #[error("附注文件 {file} 写得不对：{detail}\n请改正（不认识的项会被拒绝）后再放入发件箱。")]
    Sidecar { file: String, detail: String },
    #[error("{0}\n本网络只能发送非涉密公文。")]
    Classified(String),
    #[error("紧急程度 {0:?} 不认识：请用 平件、加急 或 特急（normal、urgent、extra-urgent）。")]
    Urgency(String),
    #[error(
        "期限 {0:?} 看不懂：请写时间（如 2027-03-01T17:00:00+08:00）或时长（如 3d 表示三天）。"
    )]
    Deadline(String),
    #[error("期限 {0:?} 已经过去：请写一个将来的时间，或时长（如 3d，从交换中心收下公文时算起）。")]
    DeadlinePast(String),
    #[error(
        "文件是空的（0 字节）。如果文件还在写入，请写完后再放入发件箱（或先以临时文件名写完，再改成正式文件名）。"
    )]
    Empty,
    #[error("文件夹里没有文件。")]
    EmptyFolder,
    #[error("文件夹里还有子文件夹（{0}）：请把公文的文件都直接放在这个文件夹里。")]
    NestedFolder(String),
    #[error("附注文件写了 main = {0:?}，但文件夹里没有这个文件。")]
    MainMissing(String),
    #[error(
        "文件夹里没有正文：请把正文文件改名为以「正文」开头（如 正文.pdf），或在附注文件（同名的 .meta.toml）中写 main = \"文件名\"，再把文件夹放回发件箱。"
    )]
    NoMainText,
    #[error("{0}")]
    Name(String),
    #[error("{0}")]
    Reply(String),
    #[error("公文共 {size} 字节，超过本单位一次最多可发送的 {limit} 字节。")]
    TooLarge { size: u64, limit: u64 },
    #[error("无法读取放入的文件：{0}")]
    Unreadable(String),
    #[error("{0}")]
    Elements(String),
}

/// One file of a draft.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DraftFile {
    pub path: PathBuf,
    pub name: String,
    pub kind: FileKind,
    pub size: u64,
}

/// A document ready to be addressed and sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    /// Names to resolve (node ids or groups): the outbox folder and `to`.
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub title: String,
    pub doc_number: String,
    pub doc_type: String,
    pub urgency: Urgency,
    pub deadline: Option<Deadline>,
    pub operator: Operator,
    pub note: String,
    pub files: Vec<DraftFile>,
    /// The recipients are asked for an answer.
    pub asks: Option<Asks>,
    /// This answers a received document (resolved against the inbox when
    /// sealed: the digest, and whether it may be answered so).
    pub answers: Option<AnswerTo>,
    /// This forwards (转发) a received document: its files, unchanged,
    /// with its first issuer's signed header.
    pub forward_of: Option<DocId>,
    /// The GB/T 9704 elements it states.
    pub elements: Elements,
}

/// What a draft says it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnswerTo {
    pub doc_id: DocId,
    pub decision: Option<Decision>,
    pub supersedes: Option<DocId>,
}

impl Draft {
    pub fn size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// Parse a sidecar's text.
pub fn parse_sidecar(name: &str, text: &str) -> Result<Sidecar, DraftError> {
    toml::from_str(text).map_err(|e| DraftError::Sidecar {
        file: name.to_owned(),
        detail: e.to_string().trim_end().to_owned(),
    })
}

/// A sidecar's deadline; a moment must still be to come at `now`.
fn parse_deadline(v: &toml::Value, now: OffsetDateTime) -> Result<Deadline, DraftError> {
    let text = match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Datetime(d) => d.to_string(),
        other => return Err(DraftError::Deadline(other.to_string())),
    };
    if let Ok(t) = parse_rfc3339(&text) {
        if t <= now {
            return Err(DraftError::DeadlinePast(text));
        }
        return Ok(Deadline::At(t.unix_timestamp()));
    }
    // A span is sent as a span: the hub counts it from its acceptance by
    // its own clock, whatever this machine's clock says.
    if let Ok(d) = parse_duration(&text) {
        return Ok(Deadline::Within(d.as_secs()));
    }
    Err(DraftError::Deadline(text))
}

/// The title a file name gives: the name without its extension, cut to
/// the longest title allowed (a file name may be longer than a title, and
/// a clerk who set no title should not be told the title is too long).
pub fn default_title(name: &str) -> String {
    let stem = match name.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() => stem,
        _ => name,
    };
    stem.chars().take(MAX_TITLE_CHARS).collect()
}

/// A date key (TOML date or string), as YYYY-MM-DD text.
fn date_text(v: &Option<toml::Value>) -> Option<String> {
    match v.as_ref()? {
        toml::Value::String(s) => Some(s.trim().to_owned()),
        other => Some(other.to_string()),
    }
}

/// The GB/T 9704 elements a sidecar states, read (not yet checked
/// against the files: see [`Elements::check`]).
pub fn elements_of(sc: &Sidecar) -> Result<Elements, DraftError> {
    let publicity = match sc.publicity.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(p) => Some(Publicity::parse(p).ok_or_else(|| {
            DraftError::Elements(format!(
                "公开属性“{p}”不认识：请写 主动公开、依申请公开 或 不予公开。"
            ))
        })?),
    };
    let list = |n: &Names| -> Vec<String> {
        n.clone()
            .into_vec()
            .into_iter()
            .map(|s| s.trim().to_owned())
            .collect()
    };
    Ok(Elements {
        issuers: list(&sc.issuer),
        signers: list(&sc.signer),
        written_on: date_text(&sc.written_on),
        copy_numbers: sc.copy_no.unwrap_or(false),
        attachments_note: list(&sc.attachments_note),
        printed_by: sc.printed_by.clone().unwrap_or_default().trim().to_owned(),
        printed_on: date_text(&sc.printed_on),
        publicity,
    })
}

/// Whether the sidecar makes a new document (not an answer or a 转发,
/// whose 文种 is the question's or the original's).
fn new_document(sc: &Sidecar) -> bool {
    sc.in_reply_to.is_none() && sc.forward_of.is_none()
}

/// Check what can be checked of a sidecar before anything is claimed
/// (`gongwen-agent send`): the same rules [`build`] applies.
pub fn check_sidecar(sc: &Sidecar, now: OffsetDateTime) -> Result<(), DraftError> {
    if let Some(level) = &sc.secrecy {
        check_secrecy(level).map_err(|e| DraftError::Classified(e.to_string()))?;
    }
    if let Some(u) = &sc.urgency {
        Urgency::parse(u.trim()).ok_or_else(|| DraftError::Urgency(u.clone()))?;
    }
    if let Some(d) = &sc.deadline {
        parse_deadline(d, now)?;
    }
    links(sc, now)?;
    // The attachments are counted once the files are there (build).
    let e = elements_of(sc)?;
    let doc_type = sc.doc_type.as_deref().unwrap_or("");
    e.check(doc_type, e.attachments_note.len(), new_document(sc))
        .map_err(DraftError::Elements)?;
    Ok(())
}

/// The sidecar's reply keys, checked.
fn links(
    sc: &Sidecar,
    now: OffsetDateTime,
) -> Result<(Option<Asks>, Option<AnswerTo>), DraftError> {
    let bad = |s: String| DraftError::Reply(s);
    let asks = match (&sc.reply, &sc.reply_by) {
        (None, None) => None,
        (None, Some(_)) => {
            return Err(bad(
                "写了 reply_by（答复期限），还要写 reply = \"decision\"（批复）或 \"report\"（报送材料）。".into(),
            ));
        }
        (Some(kind), by) => Some(Asks {
            kind: ReplyKind::parse(kind.trim()).ok_or_else(|| {
                bad(format!(
                    "reply {kind:?} 不认识：请写 \"decision\"（批复）或 \"report\"（报送材料）。"
                ))
            })?,
            by: by.as_ref().map(|d| parse_deadline(d, now)).transpose()?,
        }),
    };
    let doc = |key: &str, v: &str| {
        DocId::parse(v.trim()).map_err(|_| bad(format!("{key} {v:?} 不是文档编号。")))
    };
    let decision = sc
        .decision
        .as_deref()
        .map(|d| {
            Decision::parse(d.trim()).ok_or_else(|| {
                bad(format!(
                    "decision {d:?} 不认识：请写 approved（同意）、not-approved（不同意）或 revise（修改后再报）。"
                ))
            })
        })
        .transpose()?;
    let answers = match &sc.in_reply_to {
        None => {
            if decision.is_some() || sc.supersedes.is_some() {
                return Err(bad(
                    "decision 和 supersedes 只用于答复：请用 in_reply_to 写明答复的是哪份公文。"
                        .into(),
                ));
            }
            None
        }
        Some(id) => Some(AnswerTo {
            doc_id: doc("in_reply_to", id)?,
            decision,
            supersedes: sc
                .supersedes
                .as_deref()
                .map(|s| doc("supersedes", s))
                .transpose()?,
        }),
    };
    Ok((asks, answers))
}

fn read_err(e: std::io::Error) -> DraftError {
    DraftError::Unreadable(e.to_string())
}

/// A dropped folder's files: regular files only (no folders within, no
/// links), the main text first — `main` if the sidecar names it, else the
/// one whose name begins 正文; none is refused (the first file in name
/// order was once taken, and an attachment went out as the 正文) — then
/// the attachments in name order.
fn folder_files(files_dir: &Path, main: Option<&str>) -> Result<Vec<DraftFile>, DraftError> {
    let mut entries: Vec<_> = std::fs::read_dir(files_dir)
        .map_err(read_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_err)?;
    entries.sort_by_key(|e| e.file_name());
    let mut files = Vec::new();
    for e in entries {
        let Some(fname) = e.file_name().to_str().map(str::to_owned) else {
            return Err(DraftError::Name(format!(
                "文件夹里有一个文件的名字不是 UTF-8 编码（{}）：请改名后再放入。",
                gongwen_common::logsafe::Escaped(&e.file_name().to_string_lossy())
            )));
        };
        let meta = std::fs::symlink_metadata(e.path()).map_err(read_err)?;
        if meta.is_dir() {
            return Err(DraftError::NestedFolder(fname));
        }
        if !meta.is_file() {
            return Err(DraftError::Name(format!(
                "{fname} 不是普通文件（不发送快捷方式或符号链接；请把文件本身复制进来）。"
            )));
        }
        check_file_name(&fname).map_err(|e| DraftError::Name(e.to_string()))?;
        files.push(DraftFile {
            path: e.path(),
            name: fname,
            kind: FileKind::Attachment,
            size: meta.len(),
        });
    }
    if files.is_empty() {
        return Err(DraftError::EmptyFolder);
    }
    let main = match main {
        Some(m) => files
            .iter()
            .position(|f| f.name == m)
            .ok_or_else(|| DraftError::MainMissing(m.to_owned()))?,
        None => files
            .iter()
            .position(|f| f.name.starts_with("正文"))
            .ok_or(DraftError::NoMainText)?,
    };
    files[main].kind = FileKind::Main;
    let m = files.remove(main);
    files.insert(0, m);
    Ok(files)
}

/// A dropped file, the document's main text: a regular file (a pipe would
/// block whoever reads it; a device has no end).
fn single_file(files_dir: &Path, name: &str) -> Result<DraftFile, DraftError> {
    let path = files_dir.join(name);
    let meta = std::fs::symlink_metadata(&path).map_err(read_err)?;
    if !meta.is_file() {
        return Err(DraftError::Name(format!(
            "{name} 不是普通文件（管道、套接字或设备）：只能发送文件。"
        )));
    }
    check_file_name(name).map_err(|e| DraftError::Name(e.to_string()))?;
    Ok(DraftFile {
        path,
        name: name.to_owned(),
        kind: FileKind::Main,
        size: meta.len(),
    })
}

/// Build a draft from a claimed drop: `files_dir` holds the dropped file
/// (or the dropped folder's files), `name` is what was dropped, `to` the
/// outbox folder it was dropped in; `now` is this machine's time (a
/// deadline must be after it).
pub fn build(
    to: &str,
    name: &str,
    is_folder: bool,
    files_dir: &Path,
    sidecar: Option<Sidecar>,
    limit: u64,
    now: OffsetDateTime,
) -> Result<Draft, DraftError> {
    let sc = sidecar.unwrap_or_default();
    check_sidecar(&sc, now)?;
    let urgency = match &sc.urgency {
        Some(u) => Urgency::parse(u.trim()).ok_or_else(|| DraftError::Urgency(u.clone()))?,
        None => Urgency::Normal,
    };
    let deadline = sc
        .deadline
        .as_ref()
        .map(|d| parse_deadline(d, now))
        .transpose()?;
    let (asks, answers) = links(&sc, now)?;
    let forward_of = sc
        .forward_of
        .as_deref()
        .map(|v| {
            DocId::parse(v.trim())
                .map_err(|_| DraftError::Reply(format!("forward_of {v:?} 不是文档编号。")))
        })
        .transpose()?;
    let files = if is_folder {
        folder_files(files_dir, sc.main.as_deref())?
    } else {
        vec![single_file(files_dir, name)?]
    };
    if files.iter().all(|f| f.size == 0) {
        return Err(DraftError::Empty);
    }
    let size: u64 = files.iter().map(|f| f.size).sum();
    if size > limit {
        return Err(DraftError::TooLarge { size, limit });
    }
    let elements = elements_of(&sc)?;
    let attachments = files
        .iter()
        .filter(|f| f.kind == FileKind::Attachment)
        .count();
    elements
        .check(
            sc.doc_type.as_deref().unwrap_or(""),
            attachments,
            new_document(&sc),
        )
        .map_err(DraftError::Elements)?;
    let mut to_names = vec![to.to_owned()];
    to_names.extend(sc.to.into_vec());
    let title = sc
        .title
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_else(|| {
            if is_folder {
                name.chars().take(MAX_TITLE_CHARS).collect()
            } else {
                default_title(name)
            }
        });
    Ok(Draft {
        to: to_names,
        cc: sc.cc.into_vec(),
        title,
        doc_number: sc.doc_number.unwrap_or_default(),
        doc_type: sc.doc_type.unwrap_or_default(),
        urgency,
        deadline,
        operator: Operator {
            name: sc.operator.unwrap_or_default(),
            phone: sc.phone.unwrap_or_default(),
        },
        note: sc.note.unwrap_or_default(),
        files,
        asks,
        answers,
        forward_of,
        elements,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    #[test]
    fn a_full_sidecar_is_understood() {
        let sc = parse_sidecar(
            "x.meta.toml",
            r#"
title = "关于做好冬季安全生产工作的通知"
doc_number = "黑政发〔2026〕12号"
doc_type = "通知"
urgency = "加急"
deadline = "3d"
to = "daqing-gov"
cc = ["prov-finance", "prov-edu"]
note = "请于12月1日前反馈"
operator = "张三"
phone = "0451-12345678"
secrecy = "none"
"#,
        )
        .unwrap();
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("通知.pdf"), b"%PDF").unwrap();
        let draft = build(
            "cities",
            "通知.pdf",
            false,
            d.path(),
            Some(sc),
            1 << 30,
            now(),
        )
        .unwrap();
        assert_eq!(draft.to, vec!["cities", "daqing-gov"]);
        assert_eq!(draft.cc.len(), 2);
        assert_eq!(draft.urgency, Urgency::Urgent);
        assert_eq!(draft.deadline, Some(Deadline::Within(3 * 86_400)));
        assert_eq!(draft.title, "关于做好冬季安全生产工作的通知");
        assert_eq!(draft.operator.name, "张三");
    }

    #[test]
    fn reply_keys_are_checked_and_understood() {
        let parse = |text: &str| {
            let sc = parse_sidecar("x.meta.toml", text).unwrap();
            links(&sc, now())
        };
        let (asks, answers) = parse("reply = \"report\"\nreply_by = \"5d\"\n").unwrap();
        assert_eq!(
            asks,
            Some(Asks {
                kind: ReplyKind::Report,
                by: Some(Deadline::Within(5 * 86400)),
            })
        );
        assert!(answers.is_none());
        let id = DocId::generate();
        let (_, answers) =
            parse(&format!("in_reply_to = \"{id}\"\ndecision = \"不同意\"\n")).unwrap();
        assert_eq!(
            answers,
            Some(AnswerTo {
                doc_id: id,
                decision: Some(Decision::NotApproved),
                supersedes: None,
            })
        );
        for (text, says) in [
            ("reply = \"maybe\"\n", "decision"),
            ("reply_by = \"5d\"\n", "还要写 reply"),
            ("decision = \"approved\"\n", "in_reply_to"),
            ("in_reply_to = \"nonsense\"\n", "不是文档编号"),
            (
                &format!("in_reply_to = \"{id}\"\ndecision = \"ok\"\n"),
                "不认识",
            ),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn the_title_defaults_to_the_file_name() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("关于召开会议的通知.docx"), b"x").unwrap();
        let draft = build(
            "harbin-gov",
            "关于召开会议的通知.docx",
            false,
            d.path(),
            None,
            100,
            now(),
        )
        .unwrap();
        assert_eq!(draft.title, "关于召开会议的通知");
        assert_eq!(draft.files[0].kind, FileKind::Main);
    }

    #[test]
    fn bad_sidecars_and_drops_say_what_is_wrong() {
        assert!(matches!(
            parse_sidecar("a.meta.toml", "titel = \"x\""),
            Err(DraftError::Sidecar { .. })
        ));
        assert!(matches!(
            parse_sidecar("a.meta.toml", "title = "),
            Err(DraftError::Sidecar { .. })
        ));
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a.txt"), b"x").unwrap();
        let sc = parse_sidecar("a.meta.toml", "secrecy = \"秘密\"").unwrap();
        let e = build("h1", "a.txt", false, d.path(), Some(sc), 100, now()).unwrap_err();
        assert!(e.to_string().contains("非涉密"), "{e}");
        let sc = parse_sidecar("a.meta.toml", "urgency = \"asap\"").unwrap();
        assert!(matches!(
            build("h1", "a.txt", false, d.path(), Some(sc), 100, now()),
            Err(DraftError::Urgency(_))
        ));
        let sc = parse_sidecar("a.meta.toml", "deadline = \"tomorrow\"").unwrap();
        assert!(matches!(
            build("h1", "a.txt", false, d.path(), Some(sc), 100, now()),
            Err(DraftError::Deadline(_))
        ));
        std::fs::write(d.path().join("empty.txt"), b"").unwrap();
        assert_eq!(
            build("h1", "empty.txt", false, d.path(), None, 100, now()),
            Err(DraftError::Empty)
        );
        assert!(matches!(
            build("h1", "a.txt", false, d.path(), None, 0, now()),
            Err(DraftError::TooLarge { .. })
        ));
    }

    #[test]
    fn a_deadline_already_past_is_refused_with_a_plain_reason() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a.txt"), b"x").unwrap();
        let sc = parse_sidecar("a.meta.toml", "deadline = \"2020-12-01T17:00:00+08:00\"").unwrap();
        let e = build("h1", "a.txt", false, d.path(), Some(sc), 100, now()).unwrap_err();
        assert_eq!(
            e,
            DraftError::DeadlinePast("2020-12-01T17:00:00+08:00".into())
        );
        assert!(e.to_string().contains("已经过去"), "{e}");
        // A TOML date-time, too; and a span is always to come.
        let sc = parse_sidecar("a.meta.toml", "deadline = 2020-12-01T17:00:00+08:00").unwrap();
        assert!(matches!(
            check_sidecar(&sc, now()),
            Err(DraftError::DeadlinePast(_))
        ));
        let sc = parse_sidecar("a.meta.toml", "deadline = \"2d\"").unwrap();
        assert!(check_sidecar(&sc, now()).is_ok());
    }

    #[test]
    fn a_long_file_name_gives_a_title_cut_to_the_limit() {
        let d = tempfile::tempdir().unwrap();
        let name = format!("{}.txt", "长".repeat(80)); // 244 bytes, 80 characters
        std::fs::write(d.path().join(&name), b"x").unwrap();
        let draft = build("h1", &name, false, d.path(), None, 100, now()).unwrap();
        assert_eq!(draft.title, "长".repeat(80));
        let name = format!("{}.txt", "a".repeat(200));
        std::fs::write(d.path().join(&name), b"x").unwrap();
        let draft = build("h1", &name, false, d.path(), None, 100, now()).unwrap();
        assert_eq!(draft.title.chars().count(), MAX_TITLE_CHARS);
        assert!(name.starts_with(&draft.title));
    }

    #[test]
    fn a_folder_drop_has_one_main_text_and_attachments() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("附件1.xlsx"), b"1").unwrap();
        std::fs::write(d.path().join("正文.pdf"), b"2").unwrap();
        std::fs::write(d.path().join("附件2.docx"), b"3").unwrap();
        let draft = build("cities", "冬季安全生产", true, d.path(), None, 100, now()).unwrap();
        assert_eq!(draft.title, "冬季安全生产");
        assert_eq!(draft.files[0].name, "正文.pdf");
        assert_eq!(draft.files[0].kind, FileKind::Main);
        assert!(
            draft.files[1..]
                .iter()
                .all(|f| f.kind == FileKind::Attachment)
        );
        let sc = parse_sidecar("x", "main = \"附件2.docx\"").unwrap();
        let draft = build("cities", "x", true, d.path(), Some(sc), 100, now()).unwrap();
        assert_eq!(draft.files[0].name, "附件2.docx");
        let sc = parse_sidecar("x", "main = \"nope\"").unwrap();
        assert!(matches!(
            build("cities", "x", true, d.path(), Some(sc), 100, now()),
            Err(DraftError::MainMissing(_))
        ));
        // No 正文 and no main: refused, not sent with a spreadsheet as
        // its main text.
        std::fs::remove_file(d.path().join("正文.pdf")).unwrap();
        let refused = build("cities", "x", true, d.path(), None, 100, now());
        assert!(
            matches!(refused, Err(DraftError::NoMainText)),
            "{refused:?}"
        );
        let said = DraftError::NoMainText.to_string();
        assert!(
            said.starts_with("文件夹里没有正文") && said.contains("main ="),
            "{said}"
        );
    }
}
