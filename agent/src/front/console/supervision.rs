//! The supervision office's pages (督查): the province's overdue list,
//! filtered by unit names and paged at the hub, the per-unit report and
//! its chart, a document looked up, both lists as CSV, the 督办单 it sends
//! and the 督办 notices it received. Only on a supervisor unit's console
//! (the hub checks the certificate too).

use std::sync::Arc;

use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use gongwen_common::DocId;
use gongwen_common::supervision::{
    DocStatus as HubDocStatus, Found as HubFound, OverdueFilter, OverduePage, OverdueRow,
    Query as HubQuery, Report,
};
use serde::Deserialize;
use tracing::info;

use super::{
    Caller, HasCsrf, PAGE_SIZE, Page, Signed, Web, api_error, csv_download, forbidden,
    hub_sign_rows, pages, server_error, time_ms,
};
use crate::unit::accounts::User;

/// The hub's 汇总 over all time.
const REPORT: HubQuery = HubQuery::Report {
    since: None,
    until: None,
};

/// Ask the hub a supervision question; its typed answer, or why not.
async fn ask_hub<T: serde::de::DeserializeOwned>(
    web: &Web,
    question: &HubQuery,
) -> Result<T, String> {
    web.parts.link().query(question).await
}

/// Supervision pages are for supervisor units only (the hub checks the
/// certificate too).
fn need_supervisor(web: &Web) -> Result<(), Response> {
    if web.facts.role == gongwen_common::Role::Supervisor {
        Ok(())
    } else {
        Err(forbidden(
            "本单位不是督查单位：督查页面只在督查室等督查单位的控制台上提供。",
        ))
    }
}

fn overdue_items(rows: Vec<OverdueRow>) -> Vec<pages::OverdueItem> {
    rows.into_iter()
        .map(|r| pages::OverdueItem {
            deadline_ms: time_ms(&r.deadline),
            doc_id: r.doc_id,
            doc_number: r.doc_number,
            title: r.title,
            sender: r.sender,
            recipient: r.recipient,
            urgency: r.urgency.as_str().to_owned(),
            late_seconds: r.late_seconds,
            urge_count: r.urge_count.into(),
            escalation_level: r.escalation_level.into(),
            missing: r.missing,
            revoked: r.recipient_revoked,
        })
        .collect()
}

fn report_units(report: Report) -> Vec<pages::ReportUnit> {
    report
        .units
        .into_iter()
        .map(|u| pages::ReportUnit {
            unit: u.unit,
            received: u.received.into(),
            on_time: u.acknowledged_on_time.into(),
            late: u.acknowledged_late.into(),
            rejected: u.rejected.into(),
            pending: u.pending.into(),
            overdue_now: u.overdue_now.into(),
            // The hub sends it as a float (a median of two is a half).
            median_sign_seconds: u.median_sign_seconds.map(|s| s as i64),
            answers_asked: u.answers_asked.into(),
            answered_on_time: u.answered_on_time.into(),
            answered_late: u.answered_late.into(),
            answers_missing: u.answers_missing.into(),
            revoked: u.revoked,
        })
        .collect()
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct SupervisionQuery {
    #[serde(default)]
    unit: String,
    #[serde(default)]
    sender: String,
    #[serde(default)]
    urgency: String,
    #[serde(default)]
    doc: String,
    page: Option<usize>,
    #[serde(default)]
    done: String,
}

pub(super) async fn supervision_page(
    State(web): State<Arc<Web>>,
    Page { user, csrf }: Page,
    Query(q): Query<SupervisionQuery>,
) -> Response {
    supervision_view(&web, &user, &csrf, &q, None).await
}

async fn supervision_view(
    web: &Web,
    user: &User,
    csrf: &str,
    q: &SupervisionQuery,
    refused: Option<&str>,
) -> Response {
    if let Err(r) = need_supervisor(web) {
        return r;
    }
    // One page of the overdue list, filtered and paged at the hub: the
    // list may hold thousands, the page never more than PAGE_SIZE.
    let page = q.page.unwrap_or(1).max(1);
    // A unit is typed as part of its name or id (大庆, daqing): the units
    // of the directory it matches.
    let (units, senders) = (
        web.units_matching(&q.unit).await,
        web.units_matching(&q.sender).await,
    );
    let overdue: Result<OverduePage, String> = ask_hub(
        web,
        &HubQuery::Overdue {
            filter: OverdueFilter {
                units,
                senders,
                urgency: q.urgency.trim().to_owned(),
                ..Default::default()
            },
            limit: Some(PAGE_SIZE),
            offset: (page - 1).saturating_mul(PAGE_SIZE),
        },
    )
    .await;
    let report: Result<Report, String> = ask_hub(web, &REPORT).await;
    let message = match (&overdue, &report) {
        _ if refused.is_some() => refused.map(str::to_owned),
        (Err(e), _) | (_, Err(e)) => Some(format!("交换中心没有回答：{e}")),
        _ => None,
    };
    let (overdue, overdue_total) = match overdue {
        Ok(p) => (overdue_items(p.items), p.total),
        Err(_) => (Vec::new(), 0),
    };
    let report = report.map(report_units).unwrap_or_default();
    // Every unit the page names, by its name.
    let shown = overdue
        .iter()
        .flat_map(|o| [o.recipient.clone(), o.sender.clone()])
        .chain(report.iter().map(|u| u.unit.clone()))
        .collect();
    web.know_units(shown).await;
    let found = find(web, q.doc.trim()).await;
    let notices = web
        .parts
        .store()
        .run(|s| s.supervision_notices(PAGE_SIZE))
        .await
        .unwrap_or_default();
    let filter = pages::SupervisionFilter {
        unit: q.unit.clone(),
        sender: q.sender.clone(),
        urgency: q.urgency.clone(),
        doc: q.doc.clone(),
        page,
    };
    pages::supervision(
        &web.frame(user, csrf).await,
        &filter,
        &overdue,
        overdue_total,
        &report,
        found.as_ref(),
        message.as_deref(),
        pages::Done::parse(&q.done),
        &notices,
    )
    .into_response()
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct PressForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    doc: String,
    /// One unit; none: every unit overdue on the document.
    #[serde(default)]
    unit: String,
    #[serde(default)]
    words: String,
}

impl HasCsrf for PressForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// POST /supervision/press: a 督办单 to one overdue unit, or to every unit
/// overdue on the document; back to the document with what was done.
pub(super) async fn press(
    State(web): State<Arc<Web>>,
    Signed {
        user,
        csrf,
        form: Form(f),
    }: Signed<Form<PressForm>>,
) -> Response {
    let back = SupervisionQuery {
        doc: f.doc.clone(),
        ..Default::default()
    };
    let refuse = |why: String| {
        let (web, user, csrf, back) = (&web, &user, &csrf, &back);
        async move {
            let mut r = supervision_view(web, user, csrf, back, Some(&why)).await;
            *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            r
        }
    };
    if let Err(r) = need_supervisor(&web) {
        return r;
    }
    let Ok(doc) = DocId::parse(f.doc.trim()) else {
        return refuse("没有这份公文。".into()).await;
    };
    let words = f.words.trim().to_owned();
    if words.is_empty() {
        return refuse("请填写督办意见。".into()).await;
    }
    let units = if f.unit.trim().is_empty() {
        // Every unit overdue on it now, as the hub judges.
        match ask_hub::<HubDocStatus>(&web, &HubQuery::Status { doc }).await {
            Ok(st) => st
                .recipients
                .iter()
                .filter(|r| r.overdue)
                .filter_map(|r| gongwen_common::NodeId::parse_address(&r.recipient).ok())
                .collect(),
            Err(e) => return refuse(format!("交换中心没有回答：{e}")).await,
        }
    } else {
        match gongwen_common::NodeId::parse_address(f.unit.trim()) {
            Ok(u) => vec![u],
            Err(_) => return refuse(format!("没有单位 {}。", f.unit.trim())).await,
        }
    };
    if units.is_empty() {
        return refuse("这份公文现在没有超期未签收的单位。".into()).await;
    }
    match web.parts.clerk().press(doc, units, words).await {
        Ok(urged) if urged.is_empty() => {
            refuse("所选单位都已签收或退回，没有发出督办单。".into()).await
        }
        Ok(urged) => {
            info!(doc = %doc, units = urged.len(), "督办单 by {} through the console", user.name);
            Redirect::to(&format!("/supervision?doc={doc}&done=press")).into_response()
        }
        Err(e) => refuse(format!("督办单没有发出：{e}")).await,
    }
}

/// A supervisor's search: a document id shows its 签收情况, other text
/// finds documents by their 文号.
async fn find(web: &Web, wanted: &str) -> Option<pages::Found> {
    if wanted.is_empty() {
        None
    } else if let Ok(doc) = DocId::parse(wanted) {
        Some(
            match ask_hub::<HubDocStatus>(web, &HubQuery::Status { doc }).await {
                Ok(v) => pages::Found::Document(
                    v.doc_id.to_string(),
                    v.title.clone(),
                    v.doc_number.clone(),
                    hub_sign_rows(&v, &web.parts.known().names()),
                ),
                Err(e) => pages::Found::Nothing(e),
            },
        )
    } else {
        Some(
            match ask_hub::<Vec<HubFound>>(
                web,
                &HubQuery::Find {
                    doc_number: wanted.to_owned(),
                },
            )
            .await
            {
                Ok(v) => {
                    let list: Vec<(String, String, String, String)> = v
                        .into_iter()
                        .map(|d| {
                            (
                                d.doc_id.to_string(),
                                d.doc_number,
                                d.title,
                                d.sender.to_string(),
                            )
                        })
                        .collect();
                    if list.is_empty() {
                        pages::Found::Nothing(format!("没有文号含“{wanted}”的公文。"))
                    } else {
                        pages::Found::Matches(list)
                    }
                }
                Err(e) => pages::Found::Nothing(e),
            },
        )
    }
}

pub(super) async fn overdue_csv(State(web): State<Arc<Web>>, _: Page) -> Response {
    if let Err(r) = need_supervisor(&web) {
        return r;
    }
    match ask_hub::<Vec<OverdueRow>>(&web, &HubQuery::overdue()).await {
        Ok(v) => {
            let names = web.parts.known().names();
            let rows = overdue_items(v).into_iter().map(|o| {
                vec![
                    names.show(&o.recipient).to_owned(),
                    o.missing.chinese().to_owned(),
                    names.show(&o.sender).to_owned(),
                    o.doc_number,
                    o.title,
                    gongwen_common::envelope::Urgency::parse(&o.urgency)
                        .map(pages::urgency_label)
                        .unwrap_or(&o.urgency)
                        .to_owned(),
                    o.deadline_ms.map(pages::beijing).unwrap_or_default(),
                    // To the tenth of an hour: a few minutes late is not 0.
                    format!("{:.1}", o.late_seconds as f64 / 3600.0),
                    o.urge_count.to_string(),
                    o.escalation_level.to_string(),
                    o.doc_id,
                ]
            });
            let header = [
                "收文单位",
                "事项",
                "发文单位",
                "文号",
                "标题",
                "紧急程度",
                "期限",
                "超期（小时）",
                "催办次数",
                "督办级别",
                "文档编号",
            ];
            csv_download("超期未签收未答复.csv", pages::csv(&header, rows))
        }
        Err(e) => server_error(e),
    }
}

pub(super) async fn report_csv(State(web): State<Arc<Web>>, _: Page) -> Response {
    if let Err(r) = need_supervisor(&web) {
        return r;
    }
    match ask_hub::<Report>(&web, &REPORT).await {
        Ok(v) => {
            let names = web.parts.known().names();
            let rows = report_units(v).into_iter().map(|u| {
                vec![
                    names.show(&u.unit).to_owned(),
                    u.received.to_string(),
                    u.on_time.to_string(),
                    u.late.to_string(),
                    u.rejected.to_string(),
                    u.pending.to_string(),
                    u.overdue_now.to_string(),
                    u.median_sign_seconds
                        .map(|s| (s / 60).to_string())
                        .unwrap_or_default(),
                    u.answers_asked.to_string(),
                    u.answered_on_time.to_string(),
                    u.answered_late.to_string(),
                    u.answers_missing.to_string(),
                ]
            });
            let header = [
                "单位",
                "收文",
                "按时签收",
                "逾期签收",
                "退回",
                "未签收",
                "现超期",
                "签收用时中位数（分钟）",
                "要求答复",
                "按时答复",
                "逾期答复",
                "超期未答复",
            ];
            csv_download("签收汇总.csv", pages::csv(&header, rows))
        }
        Err(e) => server_error(e),
    }
}

/// `GET /api/v1/supervision/overdue|report`: the hub's JSON as it came.
pub(super) async fn api_supervision(
    State(web): State<Arc<Web>>,
    _: Caller,
    Path(query): Path<String>,
) -> Response {
    if need_supervisor(&web).is_err() {
        return api_error(StatusCode::FORBIDDEN, "this unit is not a supervisor unit");
    }
    let question = match query.as_str() {
        "overdue" => HubQuery::overdue(),
        "report" => REPORT,
        _ => return api_error(StatusCode::NOT_FOUND, "ask overdue or report"),
    };
    // Passed on as it came.
    match ask_hub::<serde_json::Value>(&web, &question).await {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => api_error(StatusCode::BAD_GATEWAY, &e),
    }
}
