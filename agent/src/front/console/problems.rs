//! 问题: what could not be sent — for whom, why, sent again once fixed
//! (重新发送) or deleted (删除) — and what failed verification.

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tracing::info;

use super::{
    DoneQuery, HasCsrf, Page, Signed, Web, pages, recipients_problem, server_error, typed_names,
};
use crate::unit::accounts::User;

/// What is in `quarantine/` (each folder with its `reason.txt`), newest
/// first, at most 200. Blocking.
fn read_quarantined(folders: &crate::unit::folders::Folders) -> Vec<pages::Problem> {
    let modified_ms = |p: &std::path::Path| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64)
    };
    let mut quarantined = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&folders.quarantine) {
        for e in entries.flatten() {
            let reason = e.path().join("reason.txt");
            quarantined.push(pages::Problem {
                name: e.file_name().to_string_lossy().into_owned(),
                reason: std::fs::read_to_string(&reason).unwrap_or_default(),
                when_ms: modified_ms(&reason),
            });
        }
    }
    quarantined.sort_by_key(|p| std::cmp::Reverse(p.when_ms));
    quarantined.truncate(200);
    quarantined
}

/// The 问题 page, with a refusal of the last act or what it did.
async fn problems_view(
    web: &Web,
    user: &User,
    csrf: &str,
    message: Option<&str>,
    done: Option<pages::Done>,
) -> Response {
    let folders = web.parts.identity().folders().clone();
    let quarantined = tokio::task::spawn_blocking(move || read_quarantined(&folders))
        .await
        .unwrap_or_default();
    match web.parts.clerk().failed(200).await {
        Ok(failed) => {
            let ids = failed
                .iter()
                .flat_map(|f| f.to.iter().chain(&f.cc).cloned())
                .collect();
            web.know_units(ids).await;
            pages::problems(
                &web.frame(user, csrf).await,
                &failed,
                &quarantined,
                message,
                done,
            )
            .into_response()
        }
        Err(e) => server_error(e),
    }
}

pub(super) async fn problems_page(
    State(web): State<Arc<Web>>,
    Page { user, csrf }: Page,
    Query(q): Query<DoneQuery>,
) -> Response {
    problems_view(&web, &user, &csrf, None, q.done()).await
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct FailedForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    cc: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    deadline_at: String,
}

/// 问题 again with why the act was refused (nothing changed).
async fn refused(web: &Web, user: &User, csrf: &str, why: &str, status: StatusCode) -> Response {
    let mut r = problems_view(web, user, csrf, Some(why), None).await;
    *r.status_mut() = status;
    r
}

/// 重新发送 from 问题: the clerk's fixes checked as the compose form's are,
/// then the files go out as a new document, whose page follows it.
pub(super) async fn resend_failed(
    State(web): State<Arc<Web>>,
    Signed {
        user,
        csrf,
        form: Form(f),
    }: Signed<Form<FailedForm>>,
) -> Response {
    let (to, cc) = (typed_names(&f.to), typed_names(&f.cc));
    if let Some(why) = recipients_problem(&web, &to, &cc).await {
        return refused(&web, &user, &csrf, &why, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    let fix = crate::actions::failed::Fix {
        to,
        cc,
        title: f.title.trim().to_owned(),
        deadline: pages::picked_time(&f.deadline_at),
    };
    match web.parts.clerk().resend_failed(f.name.clone(), fix).await {
        Ok(doc) => {
            info!(doc = %doc, "failed document sent again by {} through the console", user.name);
            Redirect::to(&format!("/sent/{doc}")).into_response()
        }
        Err(why) => refused(&web, &user, &csrf, &why, StatusCode::UNPROCESSABLE_ENTITY).await,
    }
}

/// 删除 from 问题.
pub(super) async fn delete_failed(
    State(web): State<Arc<Web>>,
    Signed {
        user,
        csrf,
        form: Form(f),
    }: Signed<Form<FailedForm>>,
) -> Response {
    match web.parts.clerk().discard_failed(f.name.clone()).await {
        Ok(()) => {
            info!(
                "failed document deleted by {} through the console",
                user.name
            );
            Redirect::to("/problems?done=delete").into_response()
        }
        Err(why) => refused(&web, &user, &csrf, &why, StatusCode::CONFLICT).await,
    }
}

impl HasCsrf for FailedForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}
