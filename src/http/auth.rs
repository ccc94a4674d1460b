//! Request authentication: the `Authenticated` extractor accepts a JWT access token or an API
//! token as `Authorization: Bearer`, and the refresh cookie helpers.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, web};

use uuid::Uuid;

use crate::auth::{API_TOKEN_PREFIX, Actor};
use crate::db;
use crate::http::error::AppError;
use crate::state::AppState;

pub const REFRESH_COOKIE: &str = "shard_refresh";
/// The API root, so the cookie also reaches `/api/v1/ws` (cookie-authenticated WebSockets).
const COOKIE_PATH: &str = "/api/v1";

/// The caller, proven by a valid access token (whose login is not revoked) or API token. For
/// a request that changes state and names no resource, a narrowed API token is refused here
/// (`access::account`); routes on a project, deployment or team use `http::access` instead.
pub struct Authenticated(pub Actor);

/// The caller, whatever their token's scope: for the few routes that check it themselves
/// (minting a narrower token).
pub struct Caller(pub Actor);

/// Resolves the bearer token of a request and notes the actor for the audit log.
/// Marks a request whose caller was counted against the API rate limit.
#[derive(Clone, Copy)]
struct RateCounted;

pub(crate) fn authenticate(
    req: &HttpRequest,
) -> Pin<Box<dyn Future<Output = Result<Actor, AppError>>>> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let token = bearer_token(req);
    let req = req.clone();
    Box::pin(async move {
        let state =
            state.ok_or_else(|| AppError::Internal(anyhow::anyhow!("app state missing")))?;
        let token = token
            .ok_or_else(|| AppError::Unauthorized("missing Authorization: Bearer token".into()))?;
        let actor = actor_for_token(&state, &token)
            .await?
            .ok_or_else(|| AppError::Unauthorized("invalid or expired token".into()))?;
        super::audit::actor(&req, &actor);
        // One count per request, however many extractors authenticate it.
        let first = req.extensions_mut().insert(RateCounted).is_none();
        if first && let Err(retry_after_secs) = state.api_limiter.hit(&actor.user_id.to_string()) {
            return Err(AppError::OverQuota {
                message: format!(
                    "too many API requests; at most {} a minute per user \
                     (quotas.api_requests_per_minute)",
                    state.config.quotas.api_requests_per_minute
                ),
                retry_after_secs,
            });
        }
        Ok(actor)
    })
}

impl FromRequest for Authenticated {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let changes = !matches!(
            *req.method(),
            actix_web::http::Method::GET | actix_web::http::Method::HEAD
        );
        let actor = authenticate(req);
        Box::pin(async move {
            let actor = actor.await?;
            crate::access::account(&actor, changes)?;
            Ok(Authenticated(actor))
        })
    }
}

impl FromRequest for Caller {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let actor = authenticate(req);
        Box::pin(async move { Ok(Caller(actor.await?)) })
    }
}

/// Resolves an access or API token to its user; `None` if the token is not valid now.
pub async fn actor_for_token(state: &AppState, token: &str) -> Result<Option<Actor>, AppError> {
    Ok(resolve_token(state, token).await?.map(|(actor, _)| actor))
}

/// What a bearer token proved, for callers that check it again later (the WebSocket).
pub enum TokenProof {
    /// An access token of login `family`, valid until `expires` (Unix seconds).
    Access { family: Uuid, expires: i64 },
    /// An API token, by its hash.
    Api { hash: String },
}

/// Resolves a token to its user and what it proved. Access tokens are checked against their
/// login (`state.logins` remembers an active one for a moment).
pub async fn resolve_token(
    state: &AppState,
    token: &str,
) -> Result<Option<(Actor, TokenProof)>, AppError> {
    if token.starts_with(API_TOKEN_PREFIX) {
        let hash = crate::secrets::token_hash(token);
        return Ok(api_token_actor(state, &hash)
            .await?
            .map(|actor| (actor, TokenProof::Api { hash })));
    }
    let Some(claims) = state.tokens.verify(token) else {
        return Ok(None);
    };
    let proof = TokenProof::Access {
        family: claims.sid,
        expires: claims.exp,
    };
    if let Some(actor) = state.logins.get(claims.sid, claims.sub) {
        return Ok(Some((actor, proof)));
    }
    let user = db::users::find_with_active_login(&state.db, claims.sub, claims.sid).await?;
    Ok(user.map(|user| {
        let actor = Actor::from(user);
        state.logins.remember(claims.sid, actor.clone());
        (actor, proof)
    }))
}

/// The user of the unexpired API token with this hash, narrowed to the token's grant; the use
/// is recorded (at most once a minute).
pub async fn api_token_actor(state: &AppState, hash: &str) -> Result<Option<Actor>, AppError> {
    let Some(token) = db::api_tokens::find_valid(&state.db, hash).await? else {
        return Ok(None);
    };
    let Some(user) = db::users::find(&state.db, token.user_id).await? else {
        return Ok(None);
    };
    if let Err(e) = db::api_tokens::touch(&state.db, &token).await {
        tracing::warn!(error = %e, "cannot record an API token's use");
    }
    let mut actor = Actor::from(user);
    actor.token = Some(crate::auth::TokenGrant {
        id: token.id,
        scope: token.scope,
        projects: db::api_tokens::project_ids(&token),
        expires_at: token.expires_at,
    });
    Ok(Some(actor))
}

fn bearer_token(req: &HttpRequest) -> Option<String> {
    let value = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
        .then(|| token.trim().to_string())
}

/// The client address used for rate limiting and the audit log: the TCP peer, unless the peer
/// is a configured trusted proxy, in which case `X-Forwarded-For` is followed from the right
/// past every trusted hop (headers from anyone else are ignored: they are trivial to forge).
pub fn client_ip(req: &HttpRequest) -> String {
    let Some(peer) = req.peer_addr().map(|a| a.ip()) else {
        return "unknown".into();
    };
    let trusted = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.config.http.trusted_proxies.as_slice())
        .unwrap_or_default();
    if trusted.is_empty() {
        return peer.to_string();
    }
    let forwarded: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    client_behind(peer, &forwarded, trusted).to_string()
}

/// Walks the forwarding chain back from `peer` while the current hop is a trusted proxy.
fn client_behind(peer: IpAddr, forwarded: &[&str], trusted: &[IpAddr]) -> IpAddr {
    let mut client = peer;
    for hop in forwarded.iter().rev() {
        if !trusted.contains(&client) {
            break;
        }
        match hop.parse::<IpAddr>() {
            Ok(ip) => client = ip,
            // Garbage in the chain: stop at the last address a trusted proxy vouched for.
            Err(_) => break,
        }
    }
    client
}

/// Refuses a cookie-authenticated request that a page of another origin made: the refresh
/// cookie is `SameSite=Strict`, but apps served at `<slug>.<apps.domain>` are the same *site*
/// as the dashboard, so the cookie alone would reach it from an app's page. A browser says
/// where a request comes from (`Sec-Fetch-Site`, `Origin`); it must be the dashboard itself.
/// Clients that are not browsers send neither header and are not affected.
pub fn check_same_origin(req: &HttpRequest) -> Result<(), AppError> {
    let refused = |why: &str| {
        AppError::Forbidden(format!(
            "cross-origin request refused ({why}); the session cookie only works from the dashboard"
        ))
    };
    let headers = req.headers();
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.to_str().unwrap_or("");
        if site != "same-origin" && site != "none" {
            return Err(refused(&format!("Sec-Fetch-Site: {site}")));
        }
    }
    let Some(origin) = headers.get(actix_web::http::header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("");
    let host = headers
        .get(actix_web::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let public = req
        .app_data::<web::Data<AppState>>()
        .and_then(|s| s.config.public_url.clone());
    if same_origin(origin, host, public.as_deref()) {
        Ok(())
    } else {
        Err(refused(&format!("Origin: {origin}")))
    }
}

/// True when `origin` is the page the request was addressed to (`host`) or the configured
/// public URL.
fn same_origin(origin: &str, host: &str, public_url: Option<&str>) -> bool {
    let Ok(parsed) = url::Url::parse(origin) else {
        return false; // includes "null" (sandboxed frames, file: pages)
    };
    let Some(origin_host) = parsed.host_str() else {
        return false;
    };
    let authority = match parsed.port() {
        Some(port) => format!("{origin_host}:{port}"),
        None => origin_host.to_string(),
    };
    if !host.is_empty() && authority.eq_ignore_ascii_case(host) {
        return true;
    }
    public_url
        .and_then(|u| url::Url::parse(u).ok())
        .is_some_and(|public| public.origin() == parsed.origin())
}

pub fn refresh_cookie(state: &AppState, token: &str) -> Cookie<'static> {
    Cookie::build(REFRESH_COOKIE, token.to_string())
        .path(COOKIE_PATH)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.config.public_url().starts_with("https://"))
        .max_age(CookieDuration::seconds(
            state.config.auth.refresh_token_ttl_secs as i64,
        ))
        .finish()
}

pub fn expired_refresh_cookie(state: &AppState) -> Cookie<'static> {
    let mut cookie = refresh_cookie(state, "");
    cookie.make_removal();
    cookie
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_dashboard_origin_is_same_origin() {
        assert!(same_origin("http://localhost:8080", "localhost:8080", None));
        assert!(same_origin("http://LOCALHOST:8080", "localhost:8080", None));
        assert!(same_origin("http://127.0.0.1", "127.0.0.1", None));
        // An app on a subdomain is the same site, but not the same origin.
        assert!(!same_origin(
            "http://blog.localhost:8080",
            "localhost:8080",
            None
        ));
        assert!(!same_origin(
            "http://localhost:9999",
            "localhost:8080",
            None
        ));
        assert!(!same_origin("null", "localhost:8080", None));
        assert!(!same_origin("https://evil.example", "localhost:8080", None));
        // Behind a reverse proxy the browser's origin is the public URL.
        assert!(same_origin(
            "https://shard.example.com",
            "127.0.0.1:8080",
            Some("https://shard.example.com/")
        ));
        assert!(!same_origin(
            "https://apps.example.com",
            "127.0.0.1:8080",
            Some("https://shard.example.com")
        ));
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let proxy = ip("10.0.0.1");
        let trusted = [proxy, ip("10.0.0.2")];
        // No trusted peer: the header is ignored.
        assert_eq!(
            client_behind(ip("203.0.113.9"), &["1.2.3.4"], &trusted),
            ip("203.0.113.9")
        );
        // One trusted proxy: the address it saw.
        assert_eq!(
            client_behind(proxy, &["198.51.100.7"], &trusted),
            ip("198.51.100.7")
        );
        // A forged left part is not believed: the walk stops at the first untrusted hop.
        assert_eq!(
            client_behind(proxy, &["1.2.3.4", "198.51.100.7", "10.0.0.2"], &trusted),
            ip("198.51.100.7")
        );
        // Garbage: stop at the trusted proxy itself.
        assert_eq!(client_behind(proxy, &["not-an-ip"], &trusted), proxy);
        // No header at all.
        assert_eq!(client_behind(proxy, &[], &trusted), proxy);
    }
}
