//! The document as GB/T 9704 lays it out, from its signed header: the
//! 版头 (份号, 紧急程度, the 发文机关标志 in red, 发文字号 and 签发人, the red
//! line), the 主体 (标题, 主送, 正文, 附件说明, 署名 and 成文日期, 附注) and
//! the 版记 (抄送, 印发机关 and 印发日期). Still no script: it is HTML and
//! CSS, and prints on A4.

use gongwen_common::NodeId;
use gongwen_common::envelope::{DocMeta, Urgency};
use maud::{Markup, html};

use super::{FileLink, Frame, percent, urgency_label};

/// A date written YYYY-MM-DD as a 公文 prints it: 2026年12月1日.
pub(super) fn chinese_date(d: &str) -> String {
    let mut parts = d.splitn(3, '-').map(|p| p.trim_start_matches('0'));
    match (parts.next(), parts.next(), parts.next()) {
        (Some(y), Some(m), Some(day)) if !m.is_empty() && !day.is_empty() => {
            format!("{y}年{m}月{day}日")
        }
        _ => d.to_owned(),
    }
}

/// The 发文机关标志: each issuing organ's name and 文件 (联合行文: the
/// organs one above another, 文件 beside them).
fn mark(issuers: &[String]) -> Markup {
    html! {
        div.gw-mark {
            @if issuers.len() > 1 {
                span.gw-organs { @for i in issuers { span { (i) } } }
                span.gw-file { "文件" }
            } @else {
                (issuers[0]) "文件"
            }
        }
    }
}

fn file_link(base: &str, f: &FileLink) -> Markup {
    html! {
        @if base.is_empty() { (f.name) } @else {
            a href={ (base) (percent(&f.name)) } download { (f.name) }
        }
    }
}

/// A received image, shown where it stands in the document: as the agent
/// redrew it (never the file itself).
fn inline_image(base: &str, f: &FileLink) -> Markup {
    html! {
        @if !base.is_empty() && crate::actions::render::is_image_name(&f.name) {
            br;
            img.inline src={ (base.replace("/files/", "/read/")) (percent(&f.name)) "/1" } alt=(f.name);
        }
    }
}

/// The face of a document: `copy_no` this unit's 份号 when it is a
/// recipient of numbered copies, `files` its files, linked under `base`
/// (named only, when empty).
pub fn document_face(
    frame: &Frame<'_>,
    m: &DocMeta,
    shown: (&str, &str),
    copy_no: Option<&str>,
    base: &str,
    files: &[FileLink],
) -> Markup {
    let (title, doc_number) = shown;
    let e = &m.elements;
    let names = |ids: &[NodeId]| frame.names.list(ids.iter().map(NodeId::as_str));
    let sender = frame.unit_name(m.sender.as_str());
    let issuers: Vec<String> = if e.issuers.is_empty() {
        vec![sender.to_owned()]
    } else {
        e.issuers.clone()
    };
    let main = files.iter().find(|f| f.kind == "正文");
    let attachments: Vec<&FileLink> = files.iter().filter(|f| f.kind == "附件").collect();
    html! {
        article.gongwen {
            div.gw-top {
                @if let Some(n) = copy_no { div { (n) } }
                @if m.urgency != Urgency::Normal { div { (urgency_label(m.urgency)) } }
            }
            (mark(&issuers))
            div.gw-number {
                span { (doc_number) }
                @if !e.signers.is_empty() {
                    span.gw-signer { "签发人：" (e.signers.join("　")) }
                }
            }
            hr.gw-red;
            h1.gw-title { (title) }
            @if !m.to.is_empty() { p.gw-to { (names(&m.to)) "：" } }
            div.gw-body {
                @if let Some(f) = main {
                    p {
                        "正文：" (file_link(base, f))
                        @if !base.is_empty() && crate::actions::render::renders(&f.name) {
                            " · " a.read href={ (base.replace("/files/", "/read/")) (percent(&f.name)) } { "在线阅读" }
                        }
                        (inline_image(base, f))
                    }
                }
            }
            @if !e.attachments_note.is_empty() || !attachments.is_empty() {
                div.gw-attach {
                    span { "附件：" }
                    ol {
                        @for (i, f) in attachments.iter().enumerate() {
                            li {
                                @match e.attachments_note.get(i) {
                                    Some(n) => { (n) " " }
                                    None => {}
                                }
                                (file_link(base, f))
                                (inline_image(base, f))
                            }
                        }
                    }
                }
            }
            div.gw-sign {
                @for i in &issuers { div { (i) } }
                @if let Some(d) = &e.written_on { div { (chinese_date(d)) } }
            }
            @if !m.note.is_empty() { p.gw-note { "（" (m.note) "）" } }
            @if let Some(p) = e.publicity { p.gw-note { "（此件" (p.chinese()) "）" } }
            @if !m.cc.is_empty() || !e.printed_by.is_empty() || e.printed_on.is_some() {
                div.gw-colophon {
                    @if !m.cc.is_empty() { p { "抄送：" (names(&m.cc)) "。" } }
                    @if !e.printed_by.is_empty() || e.printed_on.is_some() {
                        p.gw-printed {
                            span { (e.printed_by) }
                            @if let Some(d) = &e.printed_on { span { (chinese_date(d)) "印发" } }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_print_as_a_gongwen_writes_them() {
        assert_eq!(chinese_date("2026-12-01"), "2026年12月1日");
        assert_eq!(chinese_date("2027-03-15"), "2027年3月15日");
        assert_eq!(chinese_date("不是日期"), "不是日期");
    }
}
