//! The console's part in 审批 / 汇总 / 转发: the 回复 and 转发 forms of a
//! received document, and the 汇总表 of a sent one (the same paths as
//! `gongwen-agent reply`, `forward` and `collect`).

use std::sync::Arc;

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use gongwen_common::DocId;
use serde::Deserialize;
use tracing::info;

use super::{
    Caller, HasCsrf, Signed, Staging, Web, doc_page, file_download, no_such_sent, read_upload,
    received, server_error, typed_names,
};
use crate::actions::collect::Summary;
use crate::unit::accounts::User;

/// The document page again, with why nothing was done.
async fn refused(web: &Web, user: &User, csrf: &str, doc_id: &str, why: &str) -> Response {
    match received(web, doc_id).await {
        Ok((rec, sealed)) => {
            let mut r = doc_page(web, user, csrf, &rec, sealed.as_ref(), Some(why), None).await;
            *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            r
        }
        Err(r) => r,
    }
}

/// POST /inbox/{doc_id}/reply: answer it (批复 / 上报), as `gongwen-agent
/// reply` does; then to the answer's own page.
pub(super) async fn reply(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Path(doc_id): Path<String>,
    form: axum::extract::Multipart,
) -> Response {
    let mut staging = match Staging::new(&web).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (mut decision, mut note, mut by, mut supersedes) = (None, None, String::new(), None);
    let mut cc = Vec::new();
    let read = read_upload(&web, &headers, form, &mut staging, |name, value| {
        let value = value.trim().to_owned();
        match name {
            "decision" if !value.is_empty() => decision = Some(value),
            "note" if !value.is_empty() => note = Some(value),
            "by" => by = value,
            "supersedes" if !value.is_empty() => supersedes = Some(value),
            "cc" => cc = typed_names(&value),
            _ => {}
        }
    })
    .await;
    let (user, csrf, problem) = match read {
        Ok(read) => read,
        Err(refused) => return refused,
    };
    let Ok(doc) = DocId::parse(&doc_id) else {
        return refused(&web, &user, &csrf, &doc_id, "没有这份公文。").await;
    };
    let supersedes = match supersedes.as_deref().map(DocId::parse) {
        None => None,
        Some(Ok(d)) => Some(d),
        Some(Err(_)) => {
            return refused(&web, &user, &csrf, &doc_id, "要更正的答复编号不对。").await;
        }
    };
    if let Some(why) = problem {
        return refused(&web, &user, &csrf, &doc_id, &why).await;
    }
    let req = crate::actions::reply::ReplyRequest {
        doc,
        files: staging.files.clone(),
        decision,
        note,
        title: None,
        supersedes,
        cc,
        by: if by.is_empty() {
            user.display_name.clone()
        } else {
            by
        },
    };
    match web.parts.clerk().reply(req).await {
        Ok((answer, _)) => {
            info!(doc = %doc, answer = %answer, "answered by {} through the console", user.name);
            Redirect::to(&format!("/sent/{answer}")).into_response()
        }
        Err(why) => refused(&web, &user, &csrf, &doc_id, &why).await,
    }
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ForwardForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    to: Vec<String>,
    #[serde(default)]
    cc: Vec<String>,
    #[serde(default)]
    to_more: String,
    #[serde(default)]
    cc_more: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    by: String,
}

/// POST /inbox/{doc_id}/forward: pass it on (转发), as `gongwen-agent
/// forward` does; then to the forward's own page.
pub(super) async fn forward(
    State(web): State<Arc<Web>>,
    Path(doc_id): Path<String>,
    Signed {
        user,
        csrf,
        form: FormList(f),
    }: Signed<FormList<ForwardForm>>,
) -> Response {
    let Ok(doc) = DocId::parse(&doc_id) else {
        return refused(&web, &user, &csrf, &doc_id, "没有这份公文。").await;
    };
    let mut to = f.to;
    to.extend(typed_names(&f.to_more));
    let mut cc = f.cc;
    cc.extend(typed_names(&f.cc_more));
    if to.is_empty() {
        return refused(
            &web,
            &user,
            &csrf,
            &doc_id,
            "请至少选一个主送单位 (no main recipient)。",
        )
        .await;
    }
    if let Some(unknown) = web.parts.known().get().and_then(|dir| {
        to.iter()
            .chain(&cc)
            .find(|n| !dir.knows(n))
            .map(|n| format!("交换中心不认识收文单位 {n} (unknown unit or group)。"))
    }) {
        return refused(&web, &user, &csrf, &doc_id, &unknown).await;
    }
    let opt = |s: String| Some(s.trim().to_owned()).filter(|t| !t.is_empty());
    let req = crate::actions::forward::ForwardRequest {
        doc,
        to,
        cc,
        note: opt(f.note),
        by: opt(f.by).or_else(|| Some(user.display_name.clone())),
    };
    match web.parts.clerk().forward(req).await {
        Ok(forward) => {
            info!(doc = %doc, forward = %forward, "forwarded by {} through the console", user.name);
            Redirect::to(&format!("/sent/{forward}")).into_response()
        }
        Err(why) => refused(&web, &user, &csrf, &doc_id, &why).await,
    }
}

/// A form whose fields may repeat (`to=a&to=b`): axum's `Form` takes a
/// field once, so repeated check boxes are read here.
#[derive(Debug)]
pub(super) struct FormList<T>(T);

impl<T: HasCsrf> HasCsrf for FormList<T> {
    fn csrf(&self) -> &str {
        self.0.csrf()
    }
}

impl HasCsrf for ForwardForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

impl<S, T> axum::extract::FromRequest<S> for FormList<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned,
{
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let Form(pairs): Form<Vec<(String, String)>> = Form::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let mut map = serde_json::Map::new();
        for (k, v) in pairs {
            let list = matches!(k.as_str(), "to" | "cc");
            match map.get_mut(&k) {
                Some(serde_json::Value::Array(a)) => a.push(v.into()),
                _ if list => {
                    map.insert(k, serde_json::Value::Array(vec![v.into()]));
                }
                _ => {
                    map.insert(k, v.into());
                }
            }
        }
        serde_json::from_value(serde_json::Value::Object(map))
            .map(FormList)
            .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()).into_response())
    }
}

/// The 汇总 of a sent document that asked for answers; `None` if it asked
/// for none, or if it cannot be read now (the page still shows 签收情况).
pub(super) async fn summary(
    web: &Web,
    doc: DocId,
    hub: Option<gongwen_common::supervision::DocStatus>,
) -> Option<Summary> {
    match web.parts.clerk().summarize(doc, hub).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(doc = %doc, "汇总 not read: {e}");
            None
        }
    }
}

/// GET /sent/{doc_id}/汇总表.xlsx or /汇总表.csv: the table `collect`
/// writes, as a download.
pub(super) async fn summary_file(
    State(web): State<Arc<Web>>,
    _: Caller,
    Path((doc_id, file)): Path<(String, String)>,
) -> Response {
    let xlsx = match file.as_str() {
        "汇总表.xlsx" => true,
        "汇总表.csv" => false,
        _ => return no_such_sent(),
    };
    let Ok(doc) = DocId::parse(&doc_id) else {
        return no_such_sent();
    };
    let mine = web.parts.store().run(move |s| s.sent(doc)).await;
    match mine {
        Ok(Some(_)) => {}
        Ok(None) => return no_such_sent(),
        Err(e) => return server_error(e),
    }
    let hub = web.parts.clerk().hub_status(doc).await;
    let Some(summary) = summary(&web, doc, hub).await else {
        return (
            StatusCode::NOT_FOUND,
            super::pages::message(
                None,
                "没有汇总表 (404)",
                "这份公文没有要求回复，没有汇总表。",
            ),
        )
            .into_response();
    };
    if xlsx {
        match summary.xlsx() {
            Ok(bytes) => file_download(
                "汇总表.xlsx",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                bytes,
            ),
            Err(e) => server_error(e),
        }
    } else {
        file_download(
            "汇总表.csv",
            "text/csv; charset=utf-8",
            summary.csv().into_bytes(),
        )
    }
}
