//! The supervision office's page: the overdue list with its 督办单 forms,
//! the per-unit report and its chart, a document looked up, and the 督办
//! notices received.

use gongwen_common::envelope::Urgency;
use maud::{Markup, html};

use super::{
    Done, Frame, SignRow, UnitNames, beijing, done_line, layout, percent, sign_table, urgency_label,
};

/// One overdue (document, unit) province-wide.
#[derive(Debug, Clone, Default)]
pub struct OverdueItem {
    pub doc_id: String,
    pub doc_number: String,
    pub title: String,
    pub sender: String,
    pub recipient: String,
    pub urgency: String,
    pub deadline_ms: Option<i64>,
    pub late_seconds: i64,
    pub urge_count: u64,
    pub escalation_level: u64,
    /// What is missing: signing for it, or the answer it asked for.
    pub missing: Missing,
    /// The late unit's certificate has been revoked.
    pub revoked: bool,
}

/// What an overdue item lacks.
pub use gongwen_common::supervision::Missing;

/// One unit's line of the report (汇总).
#[derive(Debug, Clone, Default)]
pub struct ReportUnit {
    pub unit: String,
    pub received: u64,
    pub on_time: u64,
    pub late: u64,
    pub rejected: u64,
    pub pending: u64,
    pub overdue_now: u64,
    pub median_sign_seconds: Option<i64>,
    /// Answers asked of it, and how it answered.
    pub answers_asked: u64,
    pub answered_on_time: u64,
    pub answered_late: u64,
    pub answers_missing: u64,
    /// The unit's certificate has been revoked.
    pub revoked: bool,
}

/// The filters of `/supervision`, shown back.
#[derive(Debug, Clone, Default)]
pub struct SupervisionFilter {
    pub unit: String,
    pub sender: String,
    pub urgency: String,
    pub doc: String,
    /// The page of the overdue list shown (from 1).
    pub page: usize,
}

impl SupervisionFilter {
    /// The link to page `page` of the overdue list with these filters.
    fn page_link(&self, page: usize) -> String {
        let mut link = String::from("/supervision?");
        for (k, v) in [
            ("unit", &self.unit),
            ("sender", &self.sender),
            ("urgency", &self.urgency),
        ] {
            if !v.is_empty() {
                link.push_str(&format!("{k}={}&", percent(v)));
            }
        }
        link.push_str(&format!("page={page}"));
        link
    }
}

/// What a lookup on `/supervision` found.
#[derive(Debug, Clone)]
pub enum Found {
    /// Documents whose 文号 matched.
    Matches(Vec<(String, String, String, String)>),
    /// One document's 签收情况: id, title, number, rows.
    Document(String, String, String, Vec<SignRow>),
    Nothing(String),
}

fn duration_words(secs: i64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    if d > 0 {
        format!("{d} 天 {h} 小时")
    } else if h > 0 {
        format!("{h} 小时 {m} 分")
    } else {
        format!("{m} 分")
    }
}

/// One coloured part of a bar: x, width, colour, what it counts, how many.
type Segment = (u64, u64, &'static str, &'static str, u64);

/// Horizontal stacked bars, one per unit: on time, late, returned,
/// pending — drawn as inline SVG (no script, no inline style).
pub fn report_chart(units: &[ReportUnit], names: &UnitNames) -> Markup {
    let max = units.iter().map(|u| u.received).max().unwrap_or(0).max(1);
    let row_h = 22u64;
    let (label_w, bar_w) = (150u64, 480u64);
    let height = row_h * units.len() as u64 + 30;
    let width = label_w + bar_w + 60;
    let parts = |u: &ReportUnit| {
        [
            (u.on_time, "#2e7d32", "按时签收"),
            (u.late, "#ef6c00", "逾期签收"),
            (u.rejected, "#757575", "退回"),
            (u.pending, "#1565c0", "未签收"),
        ]
    };
    // Each unit's segments, laid out before drawing, and where its bar ends.
    let bars: Vec<(&ReportUnit, Vec<Segment>, u64)> = units
        .iter()
        .map(|u| {
            let mut x = label_w;
            let mut segments = Vec::new();
            for (n, color, label) in parts(u) {
                let w = n * bar_w / max;
                if w > 0 {
                    segments.push((x, w, color, label, n));
                }
                x += w;
            }
            (u, segments, x)
        })
        .collect();
    let legend_y = units.len() as u64 * row_h + 18;
    html! {
        svg.chart xmlns="http://www.w3.org/2000/svg" width=(width) height=(height)
            viewBox={ "0 0 " (width) " " (height) } role="img" aria-label="各单位签收情况" {
            @for (i, (u, segments, end)) in bars.iter().enumerate() {
                @let y = i as u64 * row_h;
                text x="0" y=(y + 15) font-size="12" fill="#1d2329" { (names.show(&u.unit)) }
                @for (x, w, color, label, n) in segments {
                    rect x=(x) y=(y + 3) width=(w) height="15" fill=(color) {
                        title { (names.show(&u.unit)) " " (label) " " (n) }
                    }
                }
                text x=(end + 6) y=(y + 15) font-size="12" fill="#5f6b76" { (u.received) }
            }
            @for (j, (_, color, label)) in parts(&ReportUnit::default()).into_iter().enumerate() {
                rect x=(label_w + j as u64 * 110) y=(legend_y - 10) width="12" height="12" fill=(color) {}
                text x=(label_w + j as u64 * 110 + 16) y=(legend_y) font-size="12" fill="#1d2329" { (label) }
            }
        }
    }
}

/// What a search on `/supervision` found.
fn found_part(frame: &Frame<'_>, found: Option<&Found>) -> Markup {
    let names = &frame.names;
    html! {
        @match found {
            Some(Found::Matches(list)) => {
                table.docs {
                    thead { tr { th { "文号" } th { "标题" } th { "发文单位" } th { "文档编号" } } }
                    tbody { @for (id, number, title, sender) in list {
                        tr { td { (number) } td { a href={ "/supervision?doc=" (id) } { (title) } } td { (names.show(sender)) } td { code { (id) } } }
                    } }
                }
            }
            Some(Found::Document(doc_id, title, number, rows)) => {
                h3 { (title) " " small { (number) } }
                (sign_table(rows, None))
                @if rows.iter().any(|r| r.overdue) {
                    h4 { "向本文所有超期未签收的单位发督办单" }
                    (press_form(frame, doc_id, None, "发督办单"))
                }
            }
            Some(Found::Nothing(why)) => { p.empty { (why) } }
            None => {}
        }
    }
}

/// The 督办单 form: to one unit (`unit`), or to every unit overdue on the
/// document (none).
fn press_form(frame: &Frame<'_>, doc_id: &str, unit: Option<&str>, label: &str) -> Markup {
    html! {
        form.press method="post" action="/supervision/press" {
            input type="hidden" name="csrf" value=(frame.csrf);
            input type="hidden" name="doc" value=(doc_id);
            @if let Some(u) = unit { input type="hidden" name="unit" value=(u); }
            input type="text" name="words" required maxlength="500" placeholder="督办意见，如：请于今日内签收";
            button type="submit" { (label) }
        }
    }
}

/// One page of the overdue list, with its pager.
fn overdue_table(
    frame: &Frame<'_>,
    f: &SupervisionFilter,
    overdue: &[OverdueItem],
    overdue_total: usize,
) -> Markup {
    let names = &frame.names;
    html! {
        @let pages = overdue_total.div_ceil(crate::front::console::PAGE_SIZE).max(1);
        @if overdue.is_empty() {
            p.empty { "没有超期未签收或未答复的公文。" }
        } @else {
            p.pager {
                "共 " (overdue_total) " 项，第 " (f.page) " / " (pages) " 页"
                @if f.page > 1 { " " a href=(f.page_link(f.page - 1)) { "上一页" } }
                @if f.page < pages { " " a href=(f.page_link(f.page + 1)) { "下一页" } }
            }
            table.docs.overdue {
                thead { tr {
                    th { "收文单位" } th { "事项" } th { "发文单位" } th { "文号" } th { "标题" } th { "紧急程度" }
                    th { "期限" } th { "超期" } th { "催办次数" } th { "督办级别" } th { "督办单" }
                } }
                tbody { @for o in overdue {
                    tr {
                        td {
                            (names.show(&o.recipient))
                            @if o.revoked { " （证书已吊销）" }
                        }
                        td { (o.missing.chinese()) } td { (names.show(&o.sender)) } td { (o.doc_number) }
                        td { a href={ "/supervision?doc=" (o.doc_id) } { (o.title) } }
                        td { (Urgency::parse(&o.urgency).map(urgency_label).unwrap_or(&o.urgency)) }
                        td.overdue { @if let Some(t) = o.deadline_ms { (beijing(t)) } }
                        td.overdue { (duration_words(o.late_seconds)) }
                        td.num { (o.urge_count) } td.num { (o.escalation_level) }
                        td { (press_form(frame, &o.doc_id, Some(&o.recipient), "督办")) }
                    }
                } }
            }
        }
    }
}

/// The 汇总 per unit.
fn report_table(report: &[ReportUnit], names: &UnitNames) -> Markup {
    html! {
        table.docs.report {
            thead { tr {
                th { "单位" } th { "收文" } th { "按时签收" } th { "逾期签收" } th { "退回" }
                th { "未签收" } th { "现超期" } th { "签收用时中位数" }
                th { "要求答复" } th { "按时答复" } th { "逾期答复" } th { "超期未答复" }
            } }
            tbody { @for u in report {
                tr {
                    td { (names.show(&u.unit)) @if u.revoked { " （证书已吊销）" } }
                    td.num { (u.received) } td.num { (u.on_time) } td.num { (u.late) }
                    td.num { (u.rejected) } td.num { (u.pending) } td.num { (u.overdue_now) }
                    td { @if let Some(s) = u.median_sign_seconds { (duration_words(s)) } @else { "—" } }
                    td.num { (u.answers_asked) } td.num { (u.answered_on_time) }
                    td.num { (u.answered_late) }
                    td.num class=[(u.answers_missing > 0).then_some("overdue")] { (u.answers_missing) }
                }
            } }
        }
    }
}

/// `/supervision`: the province, for a supervision office (督查室).
/// The 督办 notices this office received from the escalation ladder.
fn received_notices(names: &UnitNames, notices: &[gongwen_common::notice::Notice]) -> Markup {
    let when = |t: &str| {
        gongwen_common::timefmt::parse_rfc3339(t)
            .map(|t| beijing((t.unix_timestamp_nanos() / 1_000_000) as i64))
            .unwrap_or_default()
    };
    html! {
        h2 { "收到的督办通知" }
        @if notices.is_empty() {
            p.empty { "还没有收到督办通知。" }
        } @else {
            table.docs.notices {
                thead { tr {
                    th { "时间" } th { "级别" } th { "收文单位" } th { "文号" } th { "标题" }
                    th { "来文单位" } th { "已逾期" } th { "已催办" }
                } }
                tbody { @for n in notices {
                    tr {
                        td { (when(&n.at)) } td.num { (n.escalation_level) }
                        td { (names.show(n.recipient.as_str())) } td { (n.doc_number) }
                        td { a href={ "/supervision?doc=" (n.doc_id) } { (n.title) } }
                        td { (names.show(n.sender.as_str())) }
                        td { (duration_words(n.late_seconds)) } td.num { (n.urge_count) }
                    }
                } }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub fn supervision(
    frame: &Frame<'_>,
    f: &SupervisionFilter,
    overdue: &[OverdueItem],
    overdue_total: usize,
    report: &[ReportUnit],
    found: Option<&Found>,
    message: Option<&str>,
    done: Option<Done>,
    notices: &[gongwen_common::notice::Notice],
) -> Markup {
    layout(
        "督查",
        Some(frame),
        html! {
            (done_line(done, frame.cut_off.is_none()))
            h1 { "督查" }
            @if let Some(m) = message { p.error role="alert" { (m) } }
            h2 { "查公文" }
            form.filter method="get" action="/supervision" {
                label { "文档编号或文号" input type="text" name="doc" value=(f.doc); }
                button type="submit" { "查询" }
            }
            (found_part(frame, found))
            h2 { "全省超期未签收、未答复" }
            form.filter method="get" action="/supervision" {
                label { "收文单位" input type="text" name="unit" value=(f.unit) placeholder="单位名称或编号，如 大庆"; }
                label { "发文单位" input type="text" name="sender" value=(f.sender) placeholder="单位名称或编号"; }
                label { "紧急程度"
                    select name="urgency" {
                        option value="" selected[f.urgency.is_empty()] { "全部" }
                        @for (value, label) in [("normal", "平件"), ("urgent", "加急"), ("extra-urgent", "特急")] {
                            option value=(value) selected[f.urgency == value] { (label) }
                        }
                    }
                }
                button type="submit" { "筛选" }
                a href="/supervision/overdue.csv" download { "导出 CSV" }
            }
            (overdue_table(frame, f, overdue, overdue_total))
            h2 { "各单位签收与答复汇总" }
            p { a href="/supervision/report.csv" download { "导出 CSV" } }
            (report_chart(report, &frame.names))
            (report_table(report, &frame.names))
            (received_notices(&frame.names, notices))
        },
    )
}
