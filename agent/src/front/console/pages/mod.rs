//! The console's pages, as HTML built by maud: everything interpolated is
//! escaped by construction, so a title such as `<img src=x onerror=…>`
//! from another unit shows as text. No page has a script.

use gongwen_common::DocId;
use gongwen_common::envelope::Urgency;
use gongwen_common::links::{Asks, Decision, ReplyKind};
use maud::{DOCTYPE, Markup, html};

use crate::unit::accounts::User;
use crate::unit::directory::UnitNames;
use crate::unit::store::{ReceivedRecord, ReceivedState};

mod face;
mod print;
mod supervision;

pub use face::document_face;
pub use print::{Slip, handling_slip, slip};
pub use supervision::{
    Found, Missing, OverdueItem, ReportUnit, SupervisionFilter, report_chart, supervision,
};

/// What every page of a logged-in user shows in its header.
#[derive(Debug, Clone)]
pub struct Frame<'a> {
    pub user: &'a User,
    /// The session's CSRF token, for the logout form.
    pub csrf: &'a str,
    /// This unit's id and name.
    pub unit: &'a str,
    /// Whether this unit is a supervision office (its certificate's role).
    pub supervisor: bool,
    /// Units by name, for every table that names one.
    pub names: std::sync::Arc<UnitNames>,
    /// Why this unit cannot reach the hub now, for the banner on every
    /// page; none while connected.
    pub cut_off: Option<String>,
    pub counts: NavCounts,
}

impl Frame<'_> {
    /// A unit as a clerk reads it: its 单位名称 (the id when none is known).
    pub fn unit_name<'b>(&'b self, id: &'b str) -> &'b str {
        self.names.show(id)
    }
}

/// What waits on the clerk, shown in the navigation.
#[derive(Debug, Clone, Copy, Default)]
pub struct NavCounts {
    /// 待签收.
    pub pending: usize,
    /// Sent documents returned and not yet dealt with.
    pub returned: usize,
    /// Documents in failed/.
    pub problems: usize,
}

/// What a clerk's act did, said at the top of the page it leads back to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    SignedFor,
    Returned,
    Recalled,
    Urged,
    Forwarded,
    Resent,
    Deleted,
    PutAside,
    Pressed,
}

impl Done {
    /// From the `done` of a link (`?done=ack`).
    pub fn parse(s: &str) -> Option<Done> {
        Some(match s {
            "ack" => Done::SignedFor,
            "reject" => Done::Returned,
            "recall" => Done::Recalled,
            "urge" => Done::Urged,
            "forward" => Done::Forwarded,
            "resend" => Done::Resent,
            "delete" => Done::Deleted,
            "aside" => Done::PutAside,
            "press" => Done::Pressed,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Done::SignedFor => "ack",
            Done::Returned => "reject",
            Done::Recalled => "recall",
            Done::Urged => "urge",
            Done::Forwarded => "forward",
            Done::Resent => "resend",
            Done::Deleted => "delete",
            Done::PutAside => "aside",
            Done::Pressed => "press",
        }
    }

    /// What the page says, given whether the hub can be reached now.
    pub fn words(self, connected: bool) -> &'static str {
        match (self, connected) {
            (Done::SignedFor, true) => "已签收，签收回执已发往交换中心。",
            (Done::SignedFor, false) => {
                "已签收。现在连不上交换中心：回执未送达交换中心，连上后自动送出。"
            }
            (Done::Returned, true) => "已退回，退文回执已发往交换中心。",
            (Done::Returned, false) => {
                "已退回。现在连不上交换中心：回执未送达交换中心，连上后自动送出。"
            }
            (Done::Recalled, _) => "已撤回：尚未签收的单位不会再收到这份公文。",
            (Done::Urged, _) => "已催办：交换中心已向尚未签收的单位发出催办通知。",
            (Done::Forwarded, _) => "已转发。",
            (Done::Resent, _) => "已重新发送。",
            (Done::Deleted, _) => "已删除。",
            (Done::PutAside, _) => "已不再提示这份公文的退回。",
            (Done::Pressed, _) => "已发出督办单：交换中心已送往所选单位，并计入催办次数。",
        }
    }
}

pub fn urgency_label(u: Urgency) -> &'static str {
    match u {
        Urgency::Normal => "平件",
        Urgency::Urgent => "加急",
        Urgency::ExtraUrgent => "特急",
    }
}

pub fn state_label(s: ReceivedState) -> &'static str {
    match s {
        ReceivedState::Delivered => "待签收",
        ReceivedState::Quarantined => "已隔离",
        ReceivedState::Acknowledged => "已签收",
        ReceivedState::Rejected => "已退回",
        ReceivedState::Recalled => "已撤回",
    }
}

/// A time as the province reads it: Beijing time (UTC+8), to the minute.
pub fn beijing(ms: i64) -> String {
    gongwen_common::timefmt::beijing(ms, false)
}

fn layout(title: &str, frame: Option<&Frame<'_>>, body: Markup) -> Markup {
    page(title, frame, None, body)
}

/// A count in the navigation, shown only when there is something.
fn count(n: usize) -> Markup {
    html! { @if n > 0 { " " span.count { (n) } } }
}

/// Every page: the header with its counts, the banner when the unit is
/// cut off, the body; `refresh` seconds makes the browser look again
/// (a page that follows something, without script).
fn page(title: &str, frame: Option<&Frame<'_>>, refresh: Option<u32>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="zh-CN" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(secs) = refresh { meta http-equiv="refresh" content=(secs); }
                title { (title) " — 公文交换" }
                link rel="stylesheet" href="/assets/style.css";
            }
            body {
                @if let Some(f) = frame {
                    header {
                        span.unit { (f.unit) }
                        nav {
                            a href="/" { "待签收" (count(f.counts.pending)) }
                            a href="/inbox" { "收文" }
                            a href="/sent" { "发文" }
                            @if f.counts.returned > 0 {
                                a href="/sent" { "已退回" (count(f.counts.returned)) }
                            }
                            a href="/compose" { "拟稿发文" }
                            a href="/problems" { "问题" (count(f.counts.problems)) }
                            a href="/status" { "状态" }
                            @if f.supervisor { a href="/supervision" { "督查" } }
                        }
                        span.user { (f.user.display_name) " (" (f.user.name) ")" }
                        form.logout method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(f.csrf);
                            button type="submit" { "退出" }
                        }
                    }
                    @if let Some(why) = &f.cut_off {
                        p.banner role="status" { strong { "未连接交换中心。" } " " (why) " " a href="/status" { "查看状态" } }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// The line at the top of a page saying what the last act did.
fn done_line(done: Option<Done>, connected: bool) -> Markup {
    html! {
        @if let Some(d) = done { p.done role="status" { (d.words(connected)) } }
    }
}

/// `/login`; `message` says why the last attempt failed.
pub fn login(csrf: &str, username: &str, message: Option<&str>) -> Markup {
    layout(
        "登录",
        None,
        html! {
            h1 { "公文交换 · 登录" }
            @if let Some(m) = message {
                p.error role="alert" { (m) }
            }
            form.login method="post" action="/login" {
                input type="hidden" name="csrf" value=(csrf);
                label { "用户名" input type="text" name="username" value=(username) autocomplete="username" required; }
                label { "密码" input type="password" name="password" autocomplete="current-password" required; }
                button type="submit" { "登录" }
            }
        },
    )
}

/// A received document's state, and whether its answer is still on its
/// way to the hub.
fn state_text(r: &ReceivedRecord, unsent: &Unsent) -> String {
    let mut text = state_label(r.state).to_owned();
    if unsent.contains(&r.doc_id) {
        text.push_str("（未送达交换中心）");
    }
    text
}

/// Received documents whose 签收 or 退回 has not reached the hub yet.
pub type Unsent = std::collections::HashSet<DocId>;

fn received_table(rows: &[ReceivedRecord], now_ms: i64, unsent: &Unsent) -> Markup {
    html! {
        table.docs {
            thead { tr {
                th { "来文单位" } th { "文号" } th { "标题" } th { "紧急程度" }
                th { "期限" } th { "催办次数" } th { "收到时间" } th { "状态" }
            } }
            tbody {
                @for r in rows {
                    @let overdue = r.state == ReceivedState::Delivered
                        && r.deadline.is_some_and(|d| d.saturating_mul(1000) < now_ms);
                    tr {
                        td { (r.sender_name.as_deref().unwrap_or(r.sender.as_str())) }
                        td { (r.doc_number) }
                        td { a href={ "/inbox/" (r.doc_id) } { (r.title) } }
                        td { (urgency_label(r.urgency)) }
                        td class=[overdue.then_some("overdue")] {
                            @if let Some(d) = r.deadline { (beijing(d.saturating_mul(1000))) }
                            @if overdue { " 已超期" }
                        }
                        td.num { (r.urge_count) }
                        td { (beijing(r.received_ms)) }
                        td { (state_text(r, unsent)) }
                    }
                }
            }
        }
    }
}

/// A sent document returned by some recipient, not yet dealt with.
#[derive(Debug, Clone)]
pub struct ReturnedRow {
    pub doc_id: String,
    pub title: String,
    pub doc_number: String,
    pub sent_ms: i64,
    /// How many recipients returned it.
    pub returned: u32,
}

/// 被退回的发文, on the home page and atop 发文: nothing when none.
fn returned_part(rows: &[ReturnedRow]) -> Markup {
    html! {
        @if !rows.is_empty() {
            h1 { "被退回的发文" }
            (returned_table(rows))
        }
    }
}

/// The 被退回 table.
fn returned_table(rows: &[ReturnedRow]) -> Markup {
    html! {
        table.docs.returned {
            thead { tr { th { "文号" } th { "标题" } th { "发出时间" } th { "退回" } th { "" } } }
            tbody {
                @for r in rows {
                    tr {
                        td { (r.doc_number) }
                        td { a href={ "/sent/" (r.doc_id) } { (r.title) } }
                        td { (beijing(r.sent_ms)) }
                        td.overdue { "已退回 " (r.returned) }
                        td { a href={ "/sent/" (r.doc_id) } { "查看退回理由，修改后重新发送" } }
                    }
                }
            }
        }
    }
}

/// `/`: what is still to sign for or return, and what this unit sent
/// that came back.
pub fn pending(
    frame: &Frame<'_>,
    rows: &[ReceivedRecord],
    more: bool,
    now_ms: i64,
    returned: &[ReturnedRow],
    unsent: &Unsent,
) -> Markup {
    layout(
        "待签收",
        Some(frame),
        html! {
            (returned_part(returned))
            h1 { "待签收" }
            @if rows.is_empty() {
                p.empty { "没有待签收的公文。" }
            } @else {
                (received_table(rows, now_ms, unsent))
                @if more { p { a href="/inbox?state=delivered&page=2" { "更多…" } } }
            }
        },
    )
}

/// The filters `/inbox` was asked for, to show them back and page on.
#[derive(Debug, Clone, Default)]
pub struct InboxQueryView {
    pub state: String,
    pub sender: String,
    pub q: String,
    /// Received from / to (YYYY-MM-DD).
    pub from: String,
    pub to: String,
    pub page: usize,
    /// The query string without `page`.
    pub base: String,
}

/// `/inbox`: every received document, filtered, a page at a time.
pub fn inbox(
    frame: &Frame<'_>,
    view: &InboxQueryView,
    rows: &[ReceivedRecord],
    more: bool,
    now_ms: i64,
    unsent: &Unsent,
) -> Markup {
    layout(
        "收文",
        Some(frame),
        html! {
            h1 { "收文" }
            form.filter method="get" action="/inbox" {
                label { "状态"
                    select name="state" {
                        option value="" selected[view.state.is_empty()] { "全部" }
                        @for s in [ReceivedState::Delivered, ReceivedState::Acknowledged, ReceivedState::Rejected, ReceivedState::Recalled, ReceivedState::Quarantined] {
                            option value=(s.as_str()) selected[view.state == s.as_str()] { (state_label(s)) }
                        }
                    }
                }
                label { "来文单位" input type="text" name="sender" value=(view.sender) placeholder="单位名称或编号，如 哈尔滨"; }
                label { "标题、文号或正文" input type="text" name="q" value=(view.q) placeholder="OFD 正文中的文字也能查到"; }
                label { "收到日期自" input type="date" name="from" value=(view.from); }
                label { "至" input type="date" name="to" value=(view.to); }
                button type="submit" { "筛选" }
            }
            @if rows.is_empty() {
                p.empty { "没有符合条件的公文。" }
            } @else {
                (received_table(rows, now_ms, unsent))
            }
            p.pages {
                @if view.page > 1 {
                    a href={ "/inbox?" (view.base) "page=" (view.page - 1) } { "上一页" }
                }
                " 第 " (view.page) " 页 "
                @if more {
                    a href={ "/inbox?" (view.base) "page=" (view.page + 1) } { "下一页" }
                }
            }
        },
    )
}

/// One file of a received document, for its page.
#[derive(Debug, Clone)]
pub struct FileLink {
    pub name: String,
    pub kind: &'static str,
    pub size: u64,
}

/// A document's files as its page lists them.
pub fn file_links(m: &gongwen_common::envelope::DocMeta) -> Vec<FileLink> {
    m.files
        .iter()
        .map(|f| FileLink {
            name: f.name.clone(),
            kind: if f.kind == gongwen_common::envelope::FileKind::Main {
                "正文"
            } else {
                "附件"
            },
            size: f.size,
        })
        .collect()
}

/// `/inbox/{doc_id}`: every field, the files, the notices, and the forms.
/// What the document page offers beyond 签收 and 退回: answering it (回复),
/// when it asks for an answer, and passing it on (转发).
#[derive(Debug, Clone)]
pub struct DocActs<'a> {
    /// Our latest answer to it, if any (a new one corrects it).
    pub answered: Option<DocId>,
    /// The hub's directory, for choosing whom to forward it to.
    pub dir: Option<&'a crate::unit::directory::AddressBook>,
    pub me: &'a gongwen_common::NodeId,
    /// What arrival found in its OFD files (验章, 正文无法解析).
    pub ofd: &'a crate::rules::metadata::OfdFindings,
    /// This unit's 份号, when the copies are numbered.
    pub copy_no: Option<String>,
}

/// 验章 and the OFD check as a clerk reads them: one line a seal, one a
/// file that cannot be read (which the clerk may return with that reason).
pub fn seal_lines(ofd: &crate::rules::metadata::OfdFindings) -> Markup {
    use gongwen_ofd::SealResult;
    html! {
        @if !ofd.seals.is_empty() || !ofd.ofd_problems.is_empty() {
            section.seals {
                h2 { "验章" }
                ul {
                    @for s in &ofd.seals {
                        @let class = match s.verdict.result {
                            SealResult::Valid => "seal-valid",
                            SealResult::Invalid => "seal-invalid",
                            SealResult::Unverifiable => "seal-unknown",
                        };
                        li class=(class) {
                            strong { (s.verdict.result.chinese()) }
                            "　" (s.file)
                            @if let Some(n) = &s.verdict.seal_name { " · 印章：" (n) }
                            @if let Some(n) = &s.verdict.signer { " · 签章人：" (n) }
                            @if let Some(at) = s.verdict.signed_at.as_deref().and_then(|t| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()) {
                                " · 盖章时间：" (beijing(at.unix_timestamp().saturating_mul(1000)))
                            }
                            @if !s.verdict.reason.is_empty() { br; "原因：" (s.verdict.reason) }
                        }
                    }
                    @for p in &ofd.ofd_problems {
                        li.seal-invalid {
                            strong { "正文无法解析" } "　" (p.file)
                            @for why in &p.problems { br; (why) }
                            br; small { "可以退回，退回理由写明“正文无法解析”。" }
                        }
                    }
                }
            }
        }
    }
}

/// A reply deadline as the page says it.
fn reply_by_text(by: gongwen_common::envelope::Deadline) -> String {
    use gongwen_common::envelope::Deadline;
    match by {
        Deadline::At(s) => beijing(s.saturating_mul(1000)),
        Deadline::Within(secs) => {
            let (d, h) = (secs / 86_400, secs % 86_400 / 3600);
            match (d, h) {
                (0, _) => format!("发文后 {h} 小时内"),
                (_, 0) => format!("发文后 {d} 天内"),
                _ => format!("发文后 {d} 天 {h} 小时内"),
            }
        }
    }
}

/// The 回复 form: a decision (批复) or files (上报), with a note.
fn reply_form(
    frame: &Frame<'_>,
    r: &ReceivedRecord,
    asks: Asks,
    answered: Option<DocId>,
) -> Markup {
    html! {
        form.reply method="post" action={ "/inbox/" (r.doc_id) "/reply" } enctype="multipart/form-data" {
            h2 { @if answered.is_some() { "更正答复" } @else { "回复" } }
            input type="hidden" name="csrf" value=(frame.csrf);
            @if let Some(prev) = answered {
                p { small { "已答复（" code { (prev) } "）；再次提交即为更正，替代上一次答复。" } }
                input type="hidden" name="supersedes" value=(prev);
            }
            @match asks.kind {
                ReplyKind::Decision => {
                    label { "审批意见"
                        select name="decision" required {
                            @for d in [Decision::Approved, Decision::NotApproved, Decision::Revise] {
                                option value=(d.as_str()) { (d.chinese()) }
                            }
                        }
                    }
                    label { "附件（可不选）" input type="file" name="files" multiple; }
                }
                ReplyKind::Report => {
                    label { "报送材料（可多选）" input type="file" name="files" multiple required; }
                }
            }
            label { "说明" input type="text" name="note"; }
            label { "抄送（编号，逗号分隔，可不填）" input type="text" name="cc"; }
            label { "答复人" input type="text" name="by" value=(frame.user.display_name) required; }
            button type="submit" { "回复" }
        }
    }
}

/// The 转发 form: the directory's units, a note.
fn forward_form(frame: &Frame<'_>, r: &ReceivedRecord, acts: &DocActs<'_>) -> Markup {
    html! {
        form.forward method="post" action={ "/inbox/" (r.doc_id) "/forward" } {
            h2 { "转发" }
            input type="hidden" name="csrf" value=(frame.csrf);
            p { small { "原件及来文单位的签名随转发一并送达，收文单位可核验。" } }
            (recipient_picker(acts.dir, acts.me, &[], &[]))
            label { "其他主送（编号，逗号分隔）" input type="text" name="to_more"; }
            label { "其他抄送（编号，逗号分隔）" input type="text" name="cc_more"; }
            label { "转发说明" input type="text" name="note"; }
            label { "经办人" input type="text" name="by" value=(frame.user.display_name); }
            button type="submit" { "转发" }
        }
    }
}

/// What the sender's signed header says beyond the record: 主送, 抄送,
/// 经办人, the note, what it asks and answers, what it forwards.
/// The GB/T 9704 elements a document states, and `me`'s 份号 when the
/// copies are numbered.
fn element_facts(m: &gongwen_common::envelope::DocMeta, copy_no: Option<&str>) -> Markup {
    let e = &m.elements;
    html! {
        @if let Some(n) = copy_no { dt { "份号" } dd { (n) } }
        @if !e.issuers.is_empty() {
            dt { "发文机关" } dd { (e.issuers.join("、")) @if e.issuers.len() > 1 { "（联合行文）" } }
        }
        @if !e.signers.is_empty() { dt { "签发人" } dd { (e.signers.join("、")) } }
        @if let Some(d) = &e.written_on { dt { "成文日期" } dd { (d) } }
        @if !e.attachments_note.is_empty() {
            dt { "附件说明" }
            dd { ol.attachments { @for a in &e.attachments_note { li { (a) } } } }
        }
        @if !e.printed_by.is_empty() || e.printed_on.is_some() {
            dt { "印发" }
            dd {
                (e.printed_by)
                @if let Some(d) = &e.printed_on { " " (d) " 印发" }
            }
        }
        @if let Some(p) = e.publicity { dt { "公开属性" } dd { (p.chinese()) } }
    }
}

fn sender_facts(
    frame: &Frame<'_>,
    m: &gongwen_common::envelope::DocMeta,
    original: Option<&gongwen_common::envelope::SealedHeader>,
) -> Markup {
    let ids = |list: &[gongwen_common::NodeId]| frame.names.list(list.iter().map(|n| n.as_str()));
    let asks = m.links.asks;
    html! {
        dt { "主送" } dd { (ids(&m.to)) }
        @if !m.cc.is_empty() { dt { "抄送" } dd { (ids(&m.cc)) } }
        @if !m.operator.name.is_empty() || !m.operator.phone.is_empty() {
            dt { "经办人" } dd { (m.operator.name) " " (m.operator.phone) }
        }
        @if !m.note.is_empty() { dt { "备注" } dd { (m.note) } }
        @if let Some(a) = asks {
            dt { "要求答复" }
            dd {
                @match a.kind {
                    ReplyKind::Decision => "批复（审批意见）",
                    ReplyKind::Report => "报送材料",
                }
                @if let Some(by) = a.by { " · 期限 " (reply_by_text(by)) }
            }
        }
        @if let Some(a) = m.links.answers {
            dt { "答复" }
            dd {
                "答复本单位发出的公文 " a href={ "/sent/" (a.doc_id) } { "（查看原件）" }
                @if let Some(d) = a.decision { " · 意见：" strong { (d.chinese()) } }
                @if let Some(old) = a.supersedes { " · 更正 " code { (old) } }
            }
        }
        @if let Some(o) = original {
            dt { "转发自" }
            dd {
                "原发文单位 " (frame.unit_name(o.meta().sender.as_str())) " · "
                @if !o.meta().doc_number.is_empty() { (o.meta().doc_number) " · " }
                "《" (o.meta().title) "》 · 原件签名已核验"
            }
            // The forwarding unit's own words: shown as its note,
            // never as the document's heading.
            @if m.title != o.meta().title || m.doc_number != o.meta().doc_number {
                dt { "转发单位所拟" }
                dd {
                    @if !m.doc_number.is_empty() { (m.doc_number) " · " }
                    (m.title)
                }
            }
        }
    }
}

/// The 签收 and 退回 forms of a document delivered and not yet answered.
fn sign_for_forms(frame: &Frame<'_>, r: &ReceivedRecord) -> Markup {
    html! {
    div.acts {
            form.ack method="post" action={ "/inbox/" (r.doc_id) "/ack" } {
                h2 { "签收" }
                input type="hidden" name="csrf" value=(frame.csrf);
                label { "签收人" input type="text" name="by" value=(frame.user.display_name) required; }
                label.confirm { input type="checkbox" name="confirm" value="yes" required; "已阅知，确认签收（签收后不能撤销）" }
                button type="submit" { "签收" }
            }
            form.reject method="post" action={ "/inbox/" (r.doc_id) "/reject" } {
                h2 { "退回" }
                input type="hidden" name="csrf" value=(frame.csrf);
                label { "退回理由" input type="text" name="reason" required; }
                label.confirm { input type="checkbox" name="confirm" value="yes" required; "确认退回（退回后不能撤销）" }
                button type="submit" { "退回" }
            }
        }
        }
}

/// What the document page says beyond the document: a refusal of the
/// last act, or what it did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Said<'a> {
    pub refused: Option<&'a str>,
    pub done: Option<Done>,
    /// Whether the hub can be reached now (how an answer is said).
    pub connected: bool,
}

#[allow(clippy::too_many_arguments)]
pub fn received_doc(
    frame: &Frame<'_>,
    r: &ReceivedRecord,
    meta: Option<&gongwen_common::envelope::DocMeta>,
    files: &[FileLink],
    notices: &[String],
    said: Said<'_>,
    acts: &DocActs<'_>,
    unsent: &Unsent,
) -> Markup {
    let links = meta.map(|m| &m.links);
    let asks = links.and_then(|l| l.asks);
    let original = links
        .and_then(|l| l.forwards.as_deref())
        .and_then(|o| gongwen_common::envelope::SealedHeader::parse(o).ok());
    let answerable = matches!(
        r.state,
        ReceivedState::Delivered | ReceivedState::Acknowledged
    );
    let sender = r.sender_name.as_deref().unwrap_or(r.sender.as_str());
    layout(
        &r.title,
        Some(frame),
        html! {
            (done_line(said.done, said.connected))
            @if let Some(m) = said.refused { p.error role="alert" { (m) } }
            @match meta {
                Some(m) => {
                    (document_face(
                        frame,
                        m,
                        (&r.title, &r.doc_number),
                        acts.copy_no.as_deref(),
                        &format!("/inbox/{}/files/", r.doc_id),
                        files,
                    ))
                }
                None => { h1 { (r.title) } }
            }
            (seal_lines(acts.ofd))
            h2 { "办理情况" }
            dl.meta {
                dt { "来文单位" } dd { (sender) }
                dt { "文号" } dd { (r.doc_number) }
                dt { "文种" } dd { (r.doc_type) }
                @if let Some(m) = meta {
                    (sender_facts(frame, m, original.as_ref()))
                    (element_facts(m, acts.copy_no.as_deref()))
                }
                dt { "紧急程度" } dd { (urgency_label(r.urgency)) }
                dt { "期限" } dd { @if let Some(d) = r.deadline { (beijing(d.saturating_mul(1000))) } @else { "—" } }
                dt { "收到时间" } dd { (beijing(r.received_ms)) }
                dt { "状态" } dd { (state_text(r, unsent)) }
                dt { "催办次数" } dd { (r.urge_count) }
                @if let Some(a) = &r.answer {
                    dt { @if r.state == ReceivedState::Rejected { "退回理由" } @else { "签收人" } }
                    dd { (a) @if let Some(at) = r.answered_ms { " · " (beijing(at)) } }
                }
                @if let Some(why) = &r.reason { dt { "原因" } dd { (why) } }
                @if let Some(why) = &r.recall_reason { dt { "撤回理由" } dd { (why) } }
                dt { "文档编号" } dd { code { (r.doc_id) } }
            }
            p.noprint.prints {
                a href={ "/inbox/" (r.doc_id) "/print/handling" } { "打印公文处理笺" }
                @match r.state {
                    ReceivedState::Acknowledged => { " · " a href={ "/inbox/" (r.doc_id) "/print/slip" } { "打印签收单" } }
                    ReceivedState::Rejected => { " · " a href={ "/inbox/" (r.doc_id) "/print/slip" } { "打印退文单" } }
                    _ => {}
                }
            }
            h2 { "文件" }
            ul.files {
                @for f in files {
                    li {
                        a href={ "/inbox/" (r.doc_id) "/files/" (percent(&f.name)) } download { (f.name) }
                        " " small { (f.kind) " · " (f.size) " 字节" }
                    }
                }
            }
            @if !notices.is_empty() {
                h2 { "催办与督办通知" }
                ul.notices { @for n in notices { li { pre { (n) } } } }
            }
            @if r.state == ReceivedState::Delivered { (sign_for_forms(frame, r)) }
            @if answerable && (asks.is_some() || meta.is_some()) {
                div.acts {
                    @if let Some(a) = asks { (reply_form(frame, r, a, acts.answered)) }
                    // 转发 once signed for (签收).
                    @if meta.is_some() && r.state == ReceivedState::Acknowledged {
                        (forward_form(frame, r, acts))
                    }
                }
            }
        },
    )
}

/// One document this unit sent, in the `/sent` list.
#[derive(Debug, Clone)]
pub struct SentRow {
    pub doc_id: String,
    pub title: String,
    pub doc_number: String,
    pub sent_ms: i64,
    pub signed: usize,
    /// How many recipients returned it (退回).
    pub returned: usize,
    pub total: usize,
}

/// `/sent`: what this unit sent, newest first, after what came back.
pub fn sent(
    frame: &Frame<'_>,
    rows: &[SentRow],
    page: usize,
    more: bool,
    returned: &[ReturnedRow],
    done: Option<Done>,
) -> Markup {
    layout(
        "发文",
        Some(frame),
        html! {
            (done_line(done, frame.cut_off.is_none()))
            (returned_part(returned))
            h1 { "发文" }
            @if rows.is_empty() {
                p.empty { "本单位还没有发出公文。" }
            } @else {
                table.docs {
                    thead { tr { th { "文号" } th { "标题" } th { "发出时间" } th { "签收" } } }
                    tbody {
                        @for r in rows {
                            tr {
                                td { (r.doc_number) }
                                td { a href={ "/sent/" (r.doc_id) } { (r.title) } }
                                td { (beijing(r.sent_ms)) }
                                td {
                                    "已签收 " (r.signed) " / 共 " (r.total)
                                    @if r.returned > 0 { " · " span.overdue { "已退回 " (r.returned) } }
                                }
                            }
                        }
                    }
                }
            }
            p.pages {
                @if page > 1 { a href={ "/sent?page=" (page - 1) } { "上一页" } }
                " 第 " (page) " 页 "
                @if more { a href={ "/sent?page=" (page + 1) } { "下一页" } }
            }
        },
    )
}

/// One recipient's row of a sent document's 签收情况.
#[derive(Debug, Clone)]
pub struct SignRow {
    /// The unit's 单位名称 (its id when none is known).
    pub unit: String,
    pub unit_id: String,
    /// 主送 / 抄送, when the hub said.
    pub copy: Option<&'static str>,
    pub state: crate::rules::copy_state::CopyState,
    pub delivered_ms: Option<i64>,
    pub signed_by: Option<String>,
    pub signed_ms: Option<i64>,
    pub returned_reason: Option<String>,
    pub urge_count: Option<u32>,
    pub deadline_ms: Option<i64>,
    pub overdue: bool,
    /// 验章 as the recipient's clerk saw it (from its signed receipt).
    pub seals: Vec<gongwen_common::receipt::SealSeen>,
}

/// What the page says about where its figures come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The hub's own record, now.
    Hub,
    /// This unit's receipts (the hub is not reachable now).
    Local,
}

/// The 签收情况 table: one row per recipient.
/// The 签收情况 table; `slips`: the sent document whose 签收单 and 退文单
/// each row links to (none where the receipts are not this unit's).
pub fn sign_table(rows: &[SignRow], slips: Option<&str>) -> Markup {
    html! {
            table.docs.signing {
                thead { tr {
                    th { "收文单位" } th { "主送/抄送" } th { "状态" } th { "送达时间" }
                    th { "签收人" } th { "签收时间" } th { "退回理由" } th { "催办次数" } th { "期限" }
                    @if slips.is_some() { th.noprint { "" } }
                } }
                tbody {
                    @for r in rows {
                        tr {
                            td { (r.unit) }
                            td { (r.copy.unwrap_or("—")) }
                            td { (r.state.label()) }
                            td { @if let Some(t) = r.delivered_ms { (beijing(t)) } }
                            td {
                                @if let Some(b) = &r.signed_by { (b) }
                                @for s in &r.seals {
                                    br;
                                    small class=(match s.outcome {
                                        gongwen_common::receipt::SealOutcome::Valid => "seal-valid",
                                        gongwen_common::receipt::SealOutcome::Invalid => "seal-invalid",
                                        gongwen_common::receipt::SealOutcome::Unverifiable => "seal-unknown",
                                    }) {
                                        (s.outcome.chinese())
                                        @if !s.reason.is_empty() { "：" (s.reason) }
                                    }
                                }
                            }
                            td { @if let Some(t) = r.signed_ms { (beijing(t)) } }
                            td { @if let Some(why) = &r.returned_reason { (why) } }
                            td.num { @if let Some(n) = r.urge_count { (n) } @else { "—" } }
                            td class=[r.overdue.then_some("overdue")] {
                                @if let Some(t) = r.deadline_ms { (beijing(t)) }
                                @if r.overdue { " 已超期" }
                            }
                            @if let Some(doc) = slips {
                                td.noprint {
                                    @if r.state.is_signed_for() || r.state.is_returned() {
                                        a href={ "/sent/" (doc) "/slip/" (percent(&r.unit_id)) } {
                                            @if r.state.is_returned() { "退文单" } @else { "签收单" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
    }
}

/// The 汇总 of the answers asked for: one row per recipient, 未报送 in
/// red, and the table as files.
pub fn summary_table(doc_id: &str, s: &crate::actions::collect::Summary) -> Markup {
    let answered = s.recipients.iter().filter(|r| r.answer.is_some()).count();
    html! {
        h2 { "答复汇总" }
        p {
            "已报送 " (answered) " / 共 " (s.recipients.len()) " · 下载 "
            a href={ "/sent/" (doc_id) "/" (percent("汇总表.xlsx")) } download { "汇总表.xlsx" }
            " "
            a href={ "/sent/" (doc_id) "/" (percent("汇总表.csv")) } download { "汇总表.csv" }
        }
        table.docs.summary {
            thead { tr { @for h in crate::actions::collect::HEADERS { th { (h) } } } }
            tbody {
                @for r in &s.rows {
                    tr class=[r.missing.then_some("missing")] {
                        @for c in &r.cells { td { (c) } }
                    }
                }
            }
        }
    }
}

/// `/sent/{doc_id}`: 签收情况, and 撤回 / 催办 while anyone has not signed.
#[allow(clippy::too_many_arguments)]
pub fn sent_doc(
    frame: &Frame<'_>,
    record: &crate::unit::store::SentRecord,
    rows: &[SignRow],
    source: Source,
    summary: Option<&crate::actions::collect::Summary>,
    message: Option<&str>,
    done: Option<Done>,
    returns_open: u32,
    meta: Option<&gongwen_common::envelope::DocMeta>,
) -> Markup {
    let open = rows.iter().any(|r| r.state.is_open());
    let signed = rows.iter().filter(|r| r.state.is_signed_for()).count();
    let doc_id = record.doc_id.to_string();
    let doc_id = doc_id.as_str();
    let title = record.title.as_str();
    layout(
        title,
        Some(frame),
        html! {
            (done_line(done, frame.cut_off.is_none()))
            h1 { (title) }
            @if let Some(m) = message { p.error role="alert" { (m) } }
            p {
                @if !record.doc_number.is_empty() { (record.doc_number) " · " }
                "发出 " (beijing(record.sent_ms)) " · "
                "已签收 " (signed) " / 共 " (rows.len())
            }
            @if !record.left_out.is_empty() {
                div.error role="alert" {
                    p { "以下单位没有收到这份公文（发给其余单位的已发出）：" }
                    ul {
                        @for l in &record.left_out {
                            li { (frame.unit_name(l.unit.as_str())) "：" (l.reason) }
                        }
                    }
                }
            }
            @if source == Source::Local {
                p.error { "现在连不上交换中心：下表是本单位保存的回执，期限和催办次数暂缺。" }
            }
            @let returned = rows.iter().filter(|r| r.state.is_returned()).count();
            @if returned > 0 {
                div.returns role="alert" {
                    p { strong { "这份公文被 " (returned) " 个单位退回" } "，退回理由见下表。" }
                    p.acts {
                        a.button href={ "/compose?from=" (doc_id) } { "修改后重新发送" }
                        @if returns_open > 0 {
                            form.aside method="post" action={ "/sent/" (doc_id) "/aside" } {
                                input type="hidden" name="csrf" value=(frame.csrf);
                                button.plain type="submit" { "不再提示" }
                            }
                        }
                    }
                }
            }
            h2 { "签收情况" }
            (sign_table(rows, Some(doc_id)))
            @if let Some(m) = meta {
                details.face {
                    summary { "公文原样（按 GB/T 9704 版式）" }
                    (document_face(
                        frame,
                        m,
                        (&record.title, &record.doc_number),
                        None,
                        "",
                        &file_links(m),
                    ))
                }
            }
            @if let Some(s) = summary { (summary_table(doc_id, s)) }
            @if open {
                div.acts {
                    form.urge method="post" action={ "/sent/" (doc_id) "/urge" } {
                        h2 { "催办" }
                        input type="hidden" name="csrf" value=(frame.csrf);
                        p { "向尚未签收的单位发出催办通知。" }
                        button type="submit" { "催办" }
                    }
                    form.recall method="post" action={ "/sent/" (doc_id) "/recall" } {
                        h2 { "撤回" }
                        input type="hidden" name="csrf" value=(frame.csrf);
                        label { "撤回理由" input type="text" name="reason"; }
                        label.confirm { input type="checkbox" name="confirm" value="yes" required; "确认撤回（尚未签收的单位将收不到这份公文）" }
                        button type="submit" { "撤回" }
                    }
                }
            }
        },
    )
}

/// What the compose form holds (kept when it is shown again with an error).
#[derive(Debug, Clone, Default)]
pub struct ComposeView {
    pub to: Vec<String>,
    pub cc: Vec<String>,
    /// Other recipients typed in, comma-separated.
    pub to_more: String,
    pub cc_more: String,
    pub title: String,
    pub doc_number: String,
    pub doc_type: String,
    pub urgency: String,
    pub deadline: String,
    pub operator: String,
    pub phone: String,
    pub note: String,
    /// "", "decision" (请示 → 批复) or "report" (通知 → 上报).
    pub reply: String,
    pub reply_by: String,
    /// 期限 picked in the browser (2027-03-01T17:00, Beijing time), or
    /// a quick choice (3d).
    pub deadline_at: String,
    pub deadline_in: String,
    pub reply_by_at: String,
    pub reply_by_in: String,
    /// The returned document this one sends again (修改后重新发送).
    pub resend_of: String,
    /// The GB/T 9704 elements, as typed: lists separated by 、 or commas,
    /// 附件说明 one per line.
    pub issuer: String,
    pub signer: String,
    pub written_on: String,
    pub copy_no: String,
    pub attachments_note: String,
    pub printed_by: String,
    pub printed_on: String,
    pub publicity: String,
}

pub use gongwen_common::elements::DOC_TYPES;

/// Quick choices for a 期限, as spans the hub counts from acceptance.
const QUICK_SPANS: [(&str, &str); 6] = [
    ("", "不设"),
    ("1d", "1 天内"),
    ("3d", "3 天内"),
    ("7d", "7 天内"),
    ("15d", "15 天内"),
    ("30d", "30 天内"),
];

/// A time picked in a `datetime-local` input (Beijing time) as the
/// envelope's time with its offset; other text as it was typed.
pub fn picked_time(t: &str) -> String {
    let t = t.trim();
    let shape = t.len() == 16 && t.as_bytes().get(10) == Some(&b'T');
    if shape {
        format!("{t}:00+08:00")
    } else {
        t.to_owned()
    }
}

impl ComposeView {
    /// The 期限 asked for: the picked time, else the quick choice, else
    /// what was typed (an older form, the API).
    pub fn deadline(&self) -> String {
        first_given(&[
            &picked_time(&self.deadline_at),
            &self.deadline_in,
            &self.deadline,
        ])
    }

    pub fn reply_by(&self) -> String {
        first_given(&[
            &picked_time(&self.reply_by_at),
            &self.reply_by_in,
            &self.reply_by,
        ])
    }

    /// The GB/T 9704 elements typed into the form (not yet checked).
    pub fn elements(&self) -> Result<gongwen_common::elements::Elements, String> {
        use gongwen_common::elements::{Elements, Publicity};
        let list = |s: &str| -> Vec<String> {
            s.split(['、', ',', '，'])
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let date = |s: &str| Some(s.trim().to_owned()).filter(|d| !d.is_empty());
        let publicity = match self.publicity.trim() {
            "" => None,
            p => Some(Publicity::parse(p).ok_or_else(|| format!("公开属性“{p}”不认识。"))?),
        };
        Ok(Elements {
            issuers: list(&self.issuer),
            signers: list(&self.signer),
            written_on: date(&self.written_on),
            copy_numbers: self.copy_no == "yes",
            attachments_note: self
                .attachments_note
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect(),
            printed_by: self.printed_by.trim().to_owned(),
            printed_on: date(&self.printed_on),
            publicity,
        })
    }

    /// The form filled from elements a document stated.
    pub fn set_elements(&mut self, e: &gongwen_common::elements::Elements) {
        self.issuer = e.issuers.join("、");
        self.signer = e.signers.join("、");
        self.written_on = e.written_on.clone().unwrap_or_default();
        self.copy_no = if e.copy_numbers {
            "yes".into()
        } else {
            String::new()
        };
        self.attachments_note = e.attachments_note.join("\n");
        self.printed_by = e.printed_by.clone();
        self.printed_on = e.printed_on.clone().unwrap_or_default();
        self.publicity = e
            .publicity
            .map(|p| p.chinese().to_owned())
            .unwrap_or_default();
    }
}

fn first_given(options: &[&str]) -> String {
    options
        .iter()
        .map(|s| s.trim())
        .find(|s| !s.is_empty())
        .unwrap_or_default()
        .to_owned()
}

/// A 期限 as a picker and quick choices (the browser's own inputs).
fn deadline_inputs(label: &str, at_name: &str, at: &str, in_name: &str, within: &str) -> Markup {
    html! {
        fieldset.deadline {
            legend { (label) }
            label { "选择日期和时间（北京时间）" input type="datetime-local" name=(at_name) value=(at); }
            label { "或从发出时算起"
                select name=(in_name) {
                    @for (value, text) in QUICK_SPANS {
                        option value=(value) selected[within == value] { (text) }
                    }
                }
            }
        }
    }
}

/// A size as a clerk reads it.
pub fn size_words(bytes: u64) -> String {
    const MB: u64 = 1024 * 1024;
    if bytes >= 1024 * MB {
        format!("{:.1} GB", bytes as f64 / (1024 * MB) as f64)
    } else if bytes >= MB {
        format!("{} MB", bytes / MB)
    } else {
        format!("{} KB", bytes.div_ceil(1024))
    }
}

impl ComposeView {
    /// Keep a field of the compose form as it was sent.
    pub fn take_field(&mut self, name: &str, value: String) {
        match name {
            "to" if !value.trim().is_empty() => self.to.push(value.trim().to_owned()),
            "cc" if !value.trim().is_empty() => self.cc.push(value.trim().to_owned()),
            "to_more" => self.to_more = value,
            "cc_more" => self.cc_more = value,
            "title" => self.title = value,
            "doc_number" => self.doc_number = value,
            "doc_type" => self.doc_type = value,
            "urgency" => self.urgency = value,
            "deadline" => self.deadline = value,
            "operator" => self.operator = value,
            "phone" => self.phone = value,
            "note" => self.note = value,
            "reply" => self.reply = value,
            "reply_by" => self.reply_by = value,
            "deadline_at" => self.deadline_at = value,
            "deadline_in" => self.deadline_in = value,
            "reply_by_at" => self.reply_by_at = value,
            "reply_by_in" => self.reply_by_in = value,
            "resend_of" => self.resend_of = value,
            "issuer" => self.issuer = value,
            "signer" => self.signer = value,
            "written_on" => self.written_on = value,
            "copy_no" => self.copy_no = value,
            "attachments_note" => self.attachments_note = value,
            "printed_by" => self.printed_by = value,
            "printed_on" => self.printed_on = value,
            "publicity" => self.publicity = value,
            _ => {}
        }
    }
}

/// The units and groups of the directory, each with a 主送 and a 抄送 box.
pub fn recipient_picker(
    dir: Option<&crate::unit::directory::AddressBook>,
    me: &gongwen_common::NodeId,
    to: &[String],
    cc: &[String],
) -> Markup {
    let checked = |list: &[String], name: &str| list.iter().any(|x| x == name);
    html! {
                @if let Some(dir) = dir {
                    table.docs.recipients {
                        thead { tr { th { "单位或组" } th { "编号" } th { "主送" } th { "抄送" } } }
                        tbody {
                            @for g in &dir.groups {
                                @let revoked = g.members.iter().filter(|m| dir.is_revoked(m.as_str())).count();
                                tr {
                                    td {
                                        "组：" (g.name) " (" (g.members.len()) " 个单位)"
                                        @if revoked > 0 { "，其中 " (revoked) " 个证书已吊销，不会发给它们" }
                                    }
                                    td { code { (g.name) } }
                                    td { input type="checkbox" name="to" value=(g.name) checked[checked(to, &g.name)]; }
                                    td { input type="checkbox" name="cc" value=(g.name) checked[checked(cc, &g.name)]; }
                                }
                            }
                            @for u in dir.offered(me) {
                                tr {
                                    td { (u.name.as_deref().unwrap_or(u.id.as_str())) }
                                    td { code { (u.id) } }
                                    td { input type="checkbox" name="to" value=(u.id) checked[checked(to, u.id.as_str())]; }
                                    td { input type="checkbox" name="cc" value=(u.id) checked[checked(cc, u.id.as_str())]; }
                                }
                            }
                        }
                    }
                } @else {
                    p.error { "还没有从交换中心取得单位名录；请在下面填写收文单位编号。" }
                }
    }
}

/// `/compose`: 发文. Recipients from the hub's directory, as 主送 or 抄送.
pub fn compose(
    frame: &Frame<'_>,
    dir: Option<&crate::unit::directory::AddressBook>,
    me: &gongwen_common::NodeId,
    v: &ComposeView,
    message: Option<&str>,
    size_limit: u64,
) -> Markup {
    layout(
        "拟稿发文",
        Some(frame),
        html! {
            h1 { "拟稿发文" }
            @if let Some(m) = message {
                p.error role="alert" { (m) }
                p { small { "请重新选择要发送的文件（浏览器不会保留已选的文件）。" } }
            }
            @if !v.resend_of.is_empty() {
                p.done { "修改后重新发送被退回的公文：信息已按原件填好，请修改后重新选择文件。" }
            }
            form.compose method="post" action="/compose" enctype="multipart/form-data" {
                input type="hidden" name="csrf" value=(frame.csrf);
                @if !v.resend_of.is_empty() { input type="hidden" name="resend_of" value=(v.resend_of); }
                h2 { "收文单位" }
                (recipient_picker(dir, me, &v.to, &v.cc))
                label { "其他主送（编号，逗号分隔）" input type="text" name="to_more" value=(v.to_more); }
                label { "其他抄送（编号，逗号分隔）" input type="text" name="cc_more" value=(v.cc_more); }
                h2 { "公文信息" }
                label { "标题" input type="text" name="title" value=(v.title) maxlength="160"; }
                label { "文号" input type="text" name="doc_number" value=(v.doc_number) placeholder="黑政发〔2026〕12号"; }
                label { "文种"
                    select name="doc_type" {
                        option value="" selected[v.doc_type.is_empty()] { "（不写）" }
                        @for t in DOC_TYPES {
                            option value=(t) selected[v.doc_type == t] { (t) }
                        }
                    }
                }
                label { "紧急程度"
                    select name="urgency" {
                        @for (value, label) in [("normal", "平件"), ("urgent", "加急"), ("extra-urgent", "特急")] {
                            option value=(value) selected[v.urgency == value] { (label) }
                        }
                    }
                }
                (deadline_inputs("签收期限", "deadline_at", &v.deadline_at, "deadline_in", &v.deadline_in))
                label { "经办人" input type="text" name="operator" value=(v.operator); }
                label { "电话" input type="text" name="phone" value=(v.phone); }
                label { "备注" input type="text" name="note" value=(v.note); }
                label { "要求答复"
                    select name="reply" {
                        @for (value, label) in [("", "不要求"), ("decision", "批复（审批意见）"), ("report", "报送材料")] {
                            option value=(value) selected[v.reply == value] { (label) }
                        }
                    }
                }
                (deadline_inputs("答复期限", "reply_by_at", &v.reply_by_at, "reply_by_in", &v.reply_by_in))
                h2 { "公文要素" }
                p { small { "按 GB/T 9704 填写；请示、报告须写签发人。多个发文机关或签发人用“、”分隔。" } }
                label { "发文机关署名" input type="text" name="issuer" value=(v.issuer) placeholder="黑龙江省人民政府办公厅"; }
                label { "签发人" input type="text" name="signer" value=(v.signer); }
                label { "成文日期" input type="date" name="written_on" value=(v.written_on); }
                label.confirm { input type="checkbox" name="copy_no" value="yes" checked[v.copy_no == "yes"]; "为每份编份号" }
                label { "附件说明（每行一个附件的名称，按附件顺序）" textarea name="attachments_note" rows="3" { (v.attachments_note) } }
                label { "印发机关" input type="text" name="printed_by" value=(v.printed_by); }
                label { "印发日期" input type="date" name="printed_on" value=(v.printed_on); }
                label { "公开属性"
                    select name="publicity" {
                        option value="" selected[v.publicity.is_empty()] { "（不写）" }
                        @for p in ["主动公开", "依申请公开", "不予公开"] {
                            option value=(p) selected[v.publicity == p] { (p) }
                        }
                    }
                }
                h2 { "文件" }
                p { small { "正文和附件合计不超过 " (size_words(size_limit)) "。" } }
                label { "正文（一个文件）" input type="file" name="main" required; }
                label { "附件（可多选）" input type="file" name="attachments" multiple; }
                button type="submit" { "发送" }
            }
        },
    )
}

/// A document just handed to the outbox, not yet accepted by the hub:
/// the page looks again every two seconds (no script) until it is sent
/// (签收情况) or has failed (问题).
/// `progress`: bytes uploaded and in all, while the upload runs.
pub fn sending(frame: &Frame<'_>, title: &str, to: &str, progress: Option<(u64, u64)>) -> Markup {
    page(
        "发送中",
        Some(frame),
        Some(2),
        html! {
            h1 { "发送中" }
            dl.meta {
                dt { "标题" } dd { (title) }
                dt { "主送" } dd { (to) }
            }
            @if frame.cut_off.is_some() {
                p { "现在连不上交换中心：公文已保存在发送队列中，连上后自动发出。" }
            } @else if let Some((sent, total)) = progress {
                p {
                    "正在上传：已上传 " (size_words(sent)) " / 共 " (size_words(total))
                    " （" (sent.saturating_mul(100) / total.max(1)) "%）"
                }
                progress.upload max=(total.max(1)) value=(sent) {}
                p { small { "交换中心收下后，这里会显示签收情况。" } }
            } @else {
                p { "公文已交给发送队列，正在加密和上传；交换中心收下后，这里会显示签收情况。" }
            }
            p { a href="/sent" { "返回发文列表" } }
        },
    )
}

/// One thing in `quarantine/`.
#[derive(Debug, Clone)]
pub struct Problem {
    pub name: String,
    pub reason: String,
    pub when_ms: Option<i64>,
}

/// One failed document's entry on `/problems`: what it was, for whom, why,
/// and the forms that send it again or delete it.
fn failed_entry(frame: &Frame<'_>, f: &crate::actions::failed::FailedItem) -> Markup {
    let names = |ids: &[String]| frame.names.list(ids.iter().map(String::as_str));
    html! {
        li.failed {
            h3 { (f.title) }
            dl.meta {
                dt { "文件" } dd { (f.name) @if f.is_folder { "（文件夹）" } }
                dt { "主送" } dd { @if f.to.is_empty() { "（未知）" } @else { (names(&f.to)) } }
                @if !f.cc.is_empty() { dt { "抄送" } dd { (names(&f.cc)) } }
                dt { "没有发出的原因" } dd { pre { (f.reason) } }
                @if let Some(t) = f.when_ms { dt { "时间" } dd { (beijing(t)) } }
            }
            div.acts {
                form.resend method="post" action="/problems/resend" {
                    h4 { "改正后重新发送" }
                    input type="hidden" name="csrf" value=(frame.csrf);
                    input type="hidden" name="name" value=(f.name);
                    label { "主送（单位编号，逗号分隔）" input type="text" name="to" value=(f.to.join("，")) required; }
                    label { "抄送（可不填）" input type="text" name="cc" value=(f.cc.join("，")); }
                    label { "标题" input type="text" name="title" value=(f.title) maxlength="160"; }
                    label { "期限（可不填：保持原样）" input type="datetime-local" name="deadline_at"; }
                    button type="submit" { "重新发送" }
                }
                form.discard method="post" action="/problems/delete" {
                    h4 { "删除" }
                    input type="hidden" name="csrf" value=(frame.csrf);
                    input type="hidden" name="name" value=(f.name);
                    label.confirm { input type="checkbox" name="confirm" value="yes" required; "确认删除这份没有发出的公文及其文件" }
                    button.plain type="submit" { "删除" }
                }
            }
        }
    }
}

/// `/problems`: what could not be sent, and what failed verification.
pub fn problems(
    frame: &Frame<'_>,
    failed: &[crate::actions::failed::FailedItem],
    quarantined: &[Problem],
    message: Option<&str>,
    done: Option<Done>,
) -> Markup {
    layout(
        "问题",
        Some(frame),
        html! {
            (done_line(done, frame.cut_off.is_none()))
            h1 { "问题" }
            @if let Some(m) = message { p.error role="alert" { (m) } }
            h2 { "没有发出的公文" }
            @if failed.is_empty() {
                p.empty { "没有。" }
            } @else {
                p { small { "改正原因中所说的问题（例如收文单位填错）后点“重新发送”；不再需要的可以删除。" } }
                ul.problems { @for f in failed { (failed_entry(frame, f)) } }
            }
            h2 { "未通过验证、已隔离的来文" }
            @if quarantined.is_empty() {
                p.empty { "没有。" }
            } @else {
                p { small { "这些来文的签名或内容没有通过验证，没有放进收文。请联系来文单位和本单位管理员。" } }
                ul.problems {
                    @for p in quarantined {
                        li {
                            strong { (p.name) }
                            @if let Some(t) = p.when_ms { " " small { (beijing(t)) } }
                            pre { (p.reason) }
                        }
                    }
                }
            }
        },
    )
}

/// What `/status` shows.
#[derive(Debug, Clone)]
pub struct StatusView {
    /// This unit: its name and id.
    pub unit: String,
    /// Connected (since when, to what), or why not.
    pub link: String,
    pub connected: bool,
    pub cert_not_after_ms: i64,
    pub cert_days_left: i64,
    pub crl_next_update_ms: Option<i64>,
    pub crl_stale: bool,
    /// This machine's clock minus the hub's, when connected (ms).
    pub clock_offset_ms: Option<i64>,
}

/// `/status`: the link, the certificate, the CRL, the clock.
pub fn status(frame: &Frame<'_>, v: &StatusView) -> Markup {
    layout(
        "状态",
        Some(frame),
        html! {
            h1 { "状态" }
            dl.meta {
                dt { "本单位" } dd { (v.unit) }
                dt { "与交换中心的连接" }
                dd class=[(!v.connected).then_some("overdue")] { (v.link) }
                dt { "本单位证书到期" }
                dd class=[(v.cert_days_left < 30).then_some("overdue")] {
                    (beijing(v.cert_not_after_ms)) " （还有 " (v.cert_days_left) " 天）"
                    @if v.cert_days_left < 30 { " 请尽快请管理员续期。" }
                }
                dt { "吊销列表下次更新" }
                dd class=[v.crl_stale.then_some("overdue")] {
                    @if let Some(t) = v.crl_next_update_ms { (beijing(t)) } @else { "尚未收到" }
                    @if v.crl_stale { " 已过期：在交换中心更新前，来文和回执暂不能验证。" }
                }
                dt { "与交换中心的时钟差" }
                dd {
                    @match v.clock_offset_ms {
                        Some(ms) if ms.abs() < 1000 => { "不到 1 秒" }
                        Some(ms) if ms > 0 => { "本机快 " (ms / 1000) " 秒（期限以交换中心的时钟为准）" }
                        Some(ms) => { "本机慢 " (-ms / 1000) " 秒（期限以交换中心的时钟为准）" }
                        None => { "未连接，不知道" }
                    }
                }
            }
        },
    )
}

/// One CSV field: quoted when it must be, and never read as a formula by a
/// spreadsheet (a leading =, +, - or @ gets a ').
pub fn csv_field(s: &str) -> String {
    let s = crate::actions::collect::inert(s);
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// A CSV file as Excel opens it with Chinese intact: UTF-8 with a BOM,
/// CRLF line ends.
pub fn csv(header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> Vec<u8> {
    let mut out = String::from("\u{feff}");
    out.push_str(&header.join(","));
    out.push_str("\r\n");
    for row in rows {
        let fields: Vec<String> = row.iter().map(|f| csv_field(f)).collect();
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
    out.into_bytes()
}

/// A received file's pages, as the agent rendered them (no script: one
/// image per page, each fetched when the browser reaches it).
pub fn reading(
    frame: &Frame<'_>,
    r: &ReceivedRecord,
    name: &str,
    pages: Result<u32, String>,
    ofd: &crate::rules::metadata::OfdFindings,
) -> Markup {
    let back = format!("/inbox/{}", r.doc_id);
    layout(
        &r.title,
        Some(frame),
        html! {
            h1 { (r.title) }
            p.noprint { a href=(back) { "返回公文" } " · " (name) }
            // The seals' verdicts above the pages, printed with them: a
            // seal drawn on a page proves nothing by its picture.
            (seal_lines(ofd))
            @match pages {
                Ok(n) => {
                    div.pages {
                        @for i in 1..=n.min(crate::actions::render::MAX_PAGES) {
                            img.page src={ "/inbox/" (r.doc_id) "/read/" (percent(name)) "/" (i) }
                                alt={ "第 " (i) " 页" } loading="lazy";
                        }
                    }
                    @if n > crate::actions::render::MAX_PAGES {
                        p { "只显示前 " (crate::actions::render::MAX_PAGES) " 页；全文请下载。" }
                    }
                }
                Err(why) => { p.error role="alert" { (why) } }
            }
        },
    )
}

/// A plain page with a message (not found, refused …).
pub fn message(frame: Option<&Frame<'_>>, title: &str, text: &str) -> Markup {
    layout(
        title,
        frame,
        html! { h1 { (title) } p { (text) } p { a href="/" { "返回" } } },
    )
}

/// A path segment with everything but unreserved characters
/// percent-encoded (file names in links).
pub fn percent(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_show_in_beijing_time() {
        // 2026-12-06T06:00:00Z
        assert_eq!(beijing(1_796_536_800_000), "2026-12-06 14:00");
    }

    #[test]
    fn csv_fields_are_quoted_and_never_formulas() {
        assert_eq!(csv_field("哈尔滨"), "哈尔滨");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        // A leading tab or carriage return, which some spreadsheets skip
        // before reading a formula.
        assert_eq!(csv_field("\t=1+1"), "'\t=1+1");
        assert_eq!(csv_field("\r=1+1"), "\"'\r=1+1\"");
        let file = csv(
            &["单位", "超期"],
            vec![vec!["哈尔滨".into(), "3".into()]].into_iter(),
        );
        assert!(file.starts_with("\u{feff}".as_bytes()));
        assert!(
            String::from_utf8(file)
                .unwrap()
                .ends_with("单位,超期\r\n哈尔滨,3\r\n")
        );
    }

    #[test]
    fn the_page_that_follows_a_document_shows_its_upload_and_the_banner() {
        let mut accounts = crate::unit::accounts::Accounts::default();
        accounts
            .add_user(
                "li.si",
                "李四",
                crate::unit::accounts::UserRole::Clerk,
                "一个足够长的密码-2026",
                0,
            )
            .unwrap();
        let user = accounts.user("li.si").unwrap();
        let mut frame = Frame {
            user,
            csrf: "c",
            unit: "黑龙江省人民政府",
            supervisor: false,
            names: Default::default(),
            cut_off: None,
            counts: NavCounts {
                pending: 2,
                returned: 0,
                problems: 1,
            },
        };
        let mb = 1024 * 1024;
        let page = sending(
            &frame,
            "关于防汛的通知",
            "哈尔滨市人民政府",
            Some((150 * mb, 300 * mb)),
        )
        .into_string();
        assert!(page.contains("已上传 150 MB / 共 300 MB （50%）"), "{page}");
        assert!(page.contains("<progress class=\"upload\""), "{page}");
        assert!(
            page.contains("http-equiv=\"refresh\""),
            "it does not follow the document"
        );
        // The counts in the navigation, none where there is nothing.
        assert!(
            page.contains("待签收 <span class=\"count\">2</span>"),
            "{page}"
        );
        assert!(!page.contains("已退回"), "{page}");
        frame.cut_off = Some("交换中心没有应答".into());
        let page = sending(&frame, "关于防汛的通知", "哈尔滨市人民政府", None).into_string();
        assert!(
            page.contains("未连接交换中心") && page.contains("连上后自动发出"),
            "{page}"
        );
    }

    #[test]
    fn a_picked_time_is_beijing_time_and_quick_spans_pass_as_they_are() {
        assert_eq!(picked_time("2027-03-01T17:00"), "2027-03-01T17:00:00+08:00");
        assert_eq!(picked_time(" 3d "), "3d");
        let v = ComposeView {
            deadline_at: String::new(),
            deadline_in: "7d".into(),
            deadline: "ignored when a choice is made".into(),
            ..Default::default()
        };
        assert_eq!(v.deadline(), "7d");
        let v = ComposeView {
            deadline_at: "2027-03-01T17:00".into(),
            deadline_in: "7d".into(),
            ..Default::default()
        };
        assert_eq!(v.deadline(), "2027-03-01T17:00:00+08:00");
        assert_eq!(size_words(300 * 1024 * 1024), "300 MB");
        assert_eq!(size_words(1536), "2 KB");
    }

    #[test]
    fn names_in_links_are_percent_encoded() {
        assert_eq!(percent("正文 1.pdf"), "%E6%AD%A3%E6%96%87%201.pdf");
        assert_eq!(percent("a/../b"), "a%2F..%2Fb");
    }
}
