//! Pages made to be printed on A4: the 签收单 / 退文单 with the receipt's
//! verification code, and the 公文处理笺.

use maud::{DOCTYPE, Markup, html};

use super::{ReceivedRecord, ReceivedState, beijing, state_label, urgency_label};

/// What a printed 签收单 or 退文单 says: the receipt's facts and its
/// verification code.
#[derive(Debug, Clone)]
pub struct Slip {
    /// True: 签收单; false: 退文单.
    pub signed_for: bool,
    pub sender: String,
    pub recipient: String,
    pub doc_number: String,
    pub title: String,
    pub received_ms: Option<i64>,
    /// Who signed for it, or why it was returned.
    pub answer: String,
    pub answered_ms: i64,
    pub code: String,
    pub doc_id: String,
}

/// A page made to be printed on A4 (the browser's 打印): no navigation.
fn print_page(title: &str, back: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="zh-CN" {
            head {
                meta charset="utf-8";
                title { (title) " — 公文交换" }
                link rel="stylesheet" href="/assets/style.css";
            }
            body.print {
                p.noprint { a href=(back) { "返回" } " · 用浏览器的“打印”（Ctrl+P）打印本页，纸张 A4。" }
                main.sheet { (body) }
            }
        }
    }
}

/// The 签收单 or 退文单 of one recipient's answer.
pub fn slip(s: &Slip, back: &str) -> Markup {
    let title = if s.signed_for {
        "签收单"
    } else {
        "退文单"
    };
    print_page(
        title,
        back,
        html! {
            h1.sheet-title { (title) }
            table.sheet {
                tr { th { "来文单位" } td { (s.sender) } }
                tr { th { "收文单位" } td { (s.recipient) } }
                tr { th { "文号" } td { (s.doc_number) } }
                tr { th { "标题" } td { (s.title) } }
                @if let Some(t) = s.received_ms { tr { th { "送达时间" } td { (beijing(t)) } } }
                @if s.signed_for {
                    tr { th { "签收人" } td { (s.answer) } }
                    tr { th { "签收时间" } td { (beijing(s.answered_ms)) } }
                } @else {
                    tr { th { "退回理由" } td { (s.answer) } }
                    tr { th { "退回时间" } td { (beijing(s.answered_ms)) } }
                }
                tr { th { "校验码" } td.code { (s.code) } }
                tr { th { "文档编号" } td { (s.doc_id) } }
            }
            p.sheet-note {
                "本单由公文交换系统根据收文单位签名的回执生成。校验码为该回执签名的 SHA-256 摘要前 16 位，"
                "可在该文的证据包中核对。时间均为北京时间。"
            }
        },
    )
}

/// The 公文处理笺 of a received document: its facts, how it was handled,
/// and boxes for the written 拟办意见 and 领导批示.
pub fn handling_slip(r: &ReceivedRecord, unit: &str, back: &str) -> Markup {
    let sender = r.sender_name.as_deref().unwrap_or(r.sender.as_str());
    print_page(
        "公文处理笺",
        back,
        html! {
            h1.sheet-title { "公文处理笺" }
            p.sheet-unit { (unit) }
            table.sheet {
                tr { th { "来文单位" } td colspan="3" { (sender) } }
                tr { th { "文号" } td { (r.doc_number) } th { "紧急程度" } td { (urgency_label(r.urgency)) } }
                tr { th { "标题" } td colspan="3" { (r.title) } }
                tr {
                    th { "收文时间" } td { (beijing(r.received_ms)) }
                    th { "办理期限" } td { @if let Some(d) = r.deadline { (beijing(d.saturating_mul(1000))) } }
                }
                tr {
                    th { "签收人" }
                    td { @if r.state == ReceivedState::Acknowledged { @if let Some(a) = &r.answer { (a) } } }
                    th { "签收时间" }
                    td { @if r.state == ReceivedState::Acknowledged { @if let Some(t) = r.answered_ms { (beijing(t)) } } }
                }
                tr {
                    th { "办理情况" }
                    td colspan="3" {
                        (state_label(r.state))
                        @if r.state == ReceivedState::Rejected { @if let Some(a) = &r.answer { "：" (a) } }
                        @if r.urge_count > 0 { "；被催办 " (r.urge_count) " 次" }
                    }
                }
                tr.write { th { "拟办意见" } td colspan="3" {} }
                tr.write { th { "领导批示" } td colspan="3" {} }
                tr.write { th { "办理结果" } td colspan="3" {} }
            }
        },
    )
}
