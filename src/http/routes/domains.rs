//! `/projects/{id}/domains`: a project's custom domains. A domain is added `pending` with what
//! to set in DNS (a TXT token at `_shard-challenge.<domain>`, or a CNAME to the app's host),
//! and routes once `verify` finds either. One project per domain; never the dashboard's host.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Actor;
use crate::db::domains::{self, AddError, Domain};
use crate::db::projects::Project;
use crate::http::access::{Configure, ProjectFor, Read};
use crate::http::body::JsonBody;
use crate::http::error::{AppError, AppResult};
use crate::proxy::dns;
use crate::state::AppState;
use crate::validate;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/projects/{id}/domains", web::get().to(list_domains))
        .route("/projects/{id}/domains", web::post().to(add_domain))
        .route(
            "/projects/{id}/domains/{domain}",
            web::delete().to(delete_domain),
        )
        .route(
            "/projects/{id}/domains/{domain}/verify",
            web::post().to(verify_domain),
        );
}

/// At most this many domains per project.
const MAX_DOMAINS: usize = 50;

#[derive(Serialize, ToSchema)]
pub struct DnsRecord {
    /// `TXT` or `CNAME`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub name: String,
    pub value: String,
}

#[derive(Serialize, ToSchema)]
pub struct CertificateView {
    /// `none`, `pending`, `issued`, `failed` or `file`.
    pub status: String,
    pub expires_at: Option<DateTime<Utc>>,
    /// Why the last issue or renewal failed.
    pub message: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct DomainView {
    pub domain: String,
    /// `pending` until DNS proves it, then `verified`; `failed` after a check found neither.
    pub status: String,
    /// The record that proves control of the domain.
    pub verification: DnsRecord,
    /// The record that sends the domain's traffic to shard (it proves control too).
    pub routing: DnsRecord,
    /// What the last check found, when it did not verify.
    pub message: Option<String>,
    pub checked_at: Option<DateTime<Utc>>,
    pub verified_at: Option<DateTime<Utc>>,
    pub certificate: CertificateView,
    /// The app's address under this domain.
    pub url: String,
}

fn view(state: &AppState, project: &Project, d: Domain) -> DomainView {
    let scheme = if state.config.public_url().starts_with("https://") {
        "https"
    } else {
        "http"
    };
    DomainView {
        verification: DnsRecord {
            kind: "TXT",
            name: dns::challenge_name(&d.domain),
            value: d.verification_token.clone(),
        },
        routing: DnsRecord {
            kind: "CNAME",
            name: d.domain.clone(),
            value: app_host(state, project),
        },
        url: format!("{scheme}://{}", d.domain),
        status: d.status.to_string(),
        message: d.message,
        checked_at: d.checked_at,
        verified_at: d.verified_at,
        certificate: CertificateView {
            status: d.cert_status.to_string(),
            expires_at: d.cert_expires_at,
            message: d.cert_message,
        },
        domain: d.domain,
    }
}

fn app_host(state: &AppState, project: &Project) -> String {
    format!("{}.{}", project.slug, state.config.apps.domain)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddDomain {
    /// A host name such as `app.example.com`; `*.example.com` for admins only.
    pub domain: String,
}

#[utoipa::path(get, path = "/api/v1/projects/{id}/domains", tag = "domains", params(("id" = uuid::Uuid, Path, description = "the project id")),
    responses((status = 200, body = [DomainView]), (status = 404)), security(("bearer" = ["role:viewer", "scope:read"])))]
pub async fn list_domains(
    state: web::Data<AppState>,
    ProjectFor(_actor, project, _need): ProjectFor<Read>,
) -> AppResult<web::Json<Vec<DomainView>>> {
    let list = domains::list_for_project(&state.db, project.id).await?;
    Ok(web::Json(
        list.into_iter()
            .map(|d| view(&state, &project, d))
            .collect(),
    ))
}

/// Checks a requested domain against what shard itself answers for.
fn allowed(state: &AppState, actor: &Actor, raw: &str) -> AppResult<String> {
    let domain = validate::custom_domain(raw).map_err(|why| AppError::validation("domain", why))?;
    if domain.starts_with("*.") && !actor.is_admin() {
        return Err(AppError::validation(
            "domain",
            "wildcard domains can be added by admins only",
        ));
    }
    let apps = state.config.apps.domain.to_ascii_lowercase();
    if domain == apps || domain.ends_with(&format!(".{apps}")) {
        return Err(AppError::validation(
            "domain",
            format!("is under the apps domain {apps}; apps answer there already"),
        ));
    }
    if state.proxy.is_dashboard_host(&domain) {
        return Err(AppError::validation(
            "domain",
            "is the dashboard's own host",
        ));
    }
    Ok(domain)
}

#[utoipa::path(post, path = "/api/v1/projects/{id}/domains", tag = "domains", params(("id" = uuid::Uuid, Path, description = "the project id")), request_body = AddDomain,
    responses((status = 201, body = DomainView), (status = 404), (status = 403), (status = 409, description = "domain in use"), (status = 422)), security(("bearer" = ["role:admin", "scope:admin"])))]
pub async fn add_domain(
    state: web::Data<AppState>,
    req: HttpRequest,
    ProjectFor(actor, project, _need): ProjectFor<Configure>,
    body: JsonBody<AddDomain>,
) -> AppResult<HttpResponse> {
    let body = body.parse()?;
    let domain = allowed(&state, &actor, &body.domain)?;
    if domains::list_for_project(&state.db, project.id)
        .await?
        .len()
        >= MAX_DOMAINS
    {
        return Err(AppError::Conflict(format!(
            "a project can have at most {MAX_DOMAINS} domains"
        )));
    }
    let token = crate::secrets::random_token("shard-verify-");
    // Someone else's claim that was never verified in time no longer holds the name.
    let expiry = chrono::Duration::days(i64::from(state.config.domains.pending_days));
    domains::expire_pending(&state.db, chrono::Utc::now() - expiry, Some(&domain)).await?;
    let added = match domains::add(&state.db, project.id, &domain, &token).await {
        Ok(added) => added,
        Err(AddError::Taken) => {
            return Err(AppError::Conflict(format!(
                "{domain} is already added to a project"
            )));
        }
        Err(AddError::Db(e)) => return Err(e.into()),
    };
    crate::http::audit::action(&req, "domain.add", "project", project.id);
    crate::http::audit::detail(&req, serde_json::json!({ "domain": added.domain }));
    Ok(HttpResponse::Created().json(view(&state, &project, added)))
}

/// The domain `name` of this project, or 404.
async fn project_domain(
    state: &AppState,
    project: Project,
    name: &str,
) -> AppResult<(Project, Domain)> {
    let Some(normal) = crate::proxy::hosts::normalize(name) else {
        return Err(AppError::not_found("domain"));
    };
    match domains::find(&state.db, &normal).await? {
        Some(domain) if domain.project_id == project.id => Ok((project, domain)),
        _ => Err(AppError::not_found("domain")),
    }
}

#[utoipa::path(delete, path = "/api/v1/projects/{id}/domains/{domain}", tag = "domains", params(("id" = uuid::Uuid, Path, description = "the project id"), ("domain" = String, Path, description = "the custom domain")),
    responses((status = 204), (status = 403), (status = 404)), security(("bearer" = ["role:admin", "scope:admin"])))]
pub async fn delete_domain(
    state: web::Data<AppState>,
    req: HttpRequest,
    ProjectFor(_actor, project, _need): ProjectFor<Configure>,
    path: web::Path<(Uuid, String)>,
) -> AppResult<HttpResponse> {
    let (_, name) = path.into_inner();
    let (project, domain) = project_domain(&state, project, &name).await?;
    domains::delete(&state.db, project.id, &domain.domain).await?;
    state.proxy.refresh_or_log().await;
    crate::http::audit::action(&req, "domain.delete", "project", project.id);
    crate::http::audit::detail(&req, serde_json::json!({ "domain": domain.domain }));
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(post, path = "/api/v1/projects/{id}/domains/{domain}/verify", tag = "domains", params(("id" = uuid::Uuid, Path, description = "the project id"), ("domain" = String, Path, description = "the custom domain")),
    responses((status = 200, body = DomainView), (status = 404), (status = 422, description = "DNS does not show the record yet; the message says what it answered"), (status = 503, description = "the resolver did not answer")), security(("bearer" = ["role:admin", "scope:admin"])))]
pub async fn verify_domain(
    state: web::Data<AppState>,
    ProjectFor(_actor, project, _need): ProjectFor<Configure>,
    path: web::Path<(Uuid, String)>,
) -> AppResult<web::Json<DomainView>> {
    let (_, name) = path.into_inner();
    let (project, domain) = project_domain(&state, project, &name).await?;
    let answers = state
        .dns
        .answers(&domain.domain)
        .await
        .map_err(AppError::Unavailable)?;
    let target = app_host(&state, &project).to_ascii_lowercase();
    let proven = answers
        .tokens
        .iter()
        .any(|t| t == &domain.verification_token)
        || answers.cnames.iter().any(|c| c == &target);
    if proven {
        let domain =
            domains::record_check(&state.db, domain, crate::model::DomainState::Verified, None)
                .await?;
        state.proxy.refresh_or_log().await;
        return Ok(web::Json(view(&state, &project, domain)));
    }
    let message = format!(
        "DNS does not prove {name} yet: expected TXT {token:?} at {challenge} or a CNAME to {target}; \
         DNS answered TXT {tokens:?} and CNAME {cnames:?}",
        name = domain.domain,
        token = domain.verification_token,
        challenge = dns::challenge_name(&domain.domain),
        tokens = answers.tokens,
        cnames = answers.cnames,
    );
    let was_routed = domain.status == crate::model::DomainState::Verified;
    domains::record_check(
        &state.db,
        domain,
        crate::model::DomainState::Failed,
        Some(message.clone()),
    )
    .await?;
    if was_routed {
        state.proxy.refresh_or_log().await;
    }
    Err(AppError::validation("domain", message))
}
