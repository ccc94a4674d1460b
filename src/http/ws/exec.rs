//! `GET /api/v1/projects/{id}/exec`: a terminal in the app (see `tasks::exec`) over a
//! WebSocket. Authenticated like `/api/v1/ws` (the session cookie from the dashboard's origin,
//! or a first message `{"op":"auth","token"}`), for team admins and above. Binary frames carry
//! the TTY's bytes both ways; the client sends `{"op":"resize","cols","rows"}` as text; the
//! server ends with a text `{"type":"exit","exit_code"}` (and says `{"type":"error",...}` when
//! it refuses). Query: `cols`, `rows`, `fresh=true` (a new container from the live image),
//! `shell` (default `exec.shell`).
//!
//! Bounds: `exec.idle_secs` without a keystroke closes it, `exec.sessions_per_user`,
//! `exec.bytes_per_sec` of output (a faster process waits), frames of at most 64 KiB. The
//! login is re-checked every 15 s (a revoked one ends the session). Each session's start and
//! end (with its duration and byte counts) go to the audit log.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{CloseCode, CloseReason, Message, Session};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use super::credential::{self, Credential, Standing, login_for_refresh_cookie, login_for_token};
use crate::access::{self, Action, Denied};
use crate::auth::Actor;
use crate::http::error::AppError;
use crate::state::AppState;
use crate::tasks::exec::{Ask, Terminal};

const AUTH_DEADLINE: Duration = Duration::from_secs(10);
const TICK: Duration = Duration::from_secs(15);
const MAX_FRAME_BYTES: usize = 64 * 1024;
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Deserialize)]
pub struct ExecQuery {
    pub cols: Option<u16>,
    pub rows: Option<u16>,
    #[serde(default)]
    pub fresh: bool,
    pub shell: Option<String>,
}

fn check_shell(shell: &str) -> Result<(), AppError> {
    let plain = shell
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b));
    if !shell.starts_with('/') || shell.len() > 100 || !plain {
        return Err(AppError::validation(
            "shell",
            "must be an absolute path of letters, digits, '/', '.', '_' and '-', e.g. /bin/bash",
        ));
    }
    Ok(())
}

pub async fn connect(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<ExecQuery>,
) -> actix_web::Result<HttpResponse> {
    let project: Uuid = path
        .parse()
        .map_err(|_| AppError::BadRequest(format!("invalid id in path: '{path}' is not a UUID")))?;
    let query = query.into_inner();
    let shell = query
        .shell
        .clone()
        .unwrap_or_else(|| state.config.exec.shell.clone());
    check_shell(&shell)?;
    let cookie_login = match req.cookie(crate::http::auth::REFRESH_COOKIE) {
        Some(cookie) => {
            crate::http::auth::check_same_origin(&req)?;
            login_for_refresh_cookie(&state, cookie.value()).await?
        }
        None => None,
    };
    let (response, session, stream) = actix_ws::handle(&req, body)?;
    let stream = stream.max_frame_size(MAX_FRAME_BYTES);
    let ip = crate::http::auth::client_ip(&req);
    let ask = Wanted {
        project,
        fresh: query.fresh,
        shell,
        cols: query.cols.unwrap_or(80).clamp(1, 1000),
        rows: query.rows.unwrap_or(24).clamp(1, 1000),
    };
    actix_web::rt::spawn(run(
        state.into_inner(),
        session,
        stream,
        cookie_login,
        ask,
        ip,
    ));
    Ok(response)
}

struct Wanted {
    project: Uuid,
    fresh: bool,
    shell: String,
    cols: u16,
    rows: u16,
}

async fn refuse(mut session: Session, code: &str, message: &str) {
    let text = json!({"type": "error", "code": code, "message": message}).to_string();
    let _ = session.text(text).await;
    let _ = session
        .close(Some(CloseReason {
            code: CloseCode::Policy,
            description: Some(code.to_string()),
        }))
        .await;
}

/// The first message's token, within the deadline.
async fn await_auth(
    state: &AppState,
    stream: &mut actix_ws::MessageStream,
) -> Option<(Actor, Credential)> {
    let deadline = tokio::time::sleep(AUTH_DEADLINE);
    tokio::pin!(deadline);
    loop {
        let message = tokio::select! {
            message = stream.next() => message?,
            () = &mut deadline => return None,
        };
        match message {
            Ok(Message::Text(text)) => {
                let value: Value = serde_json::from_str(&text).ok()?;
                if value["op"] != "auth" {
                    return None;
                }
                let token = value["token"].as_str()?;
                return login_for_token(state, token).await.ok().flatten();
            }
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            _ => return None,
        }
    }
}

fn audit(
    state: &Arc<AppState>,
    actor: &Actor,
    project: &crate::db::projects::Project,
    action: &'static str,
    detail: Value,
    ip: &str,
) {
    let (state, actor_id, name, token) = (
        state.clone(),
        actor.user_id,
        actor.username.clone(),
        actor.token.as_ref().map(|t| t.id),
    );
    let (team, project, ip) = (project.team_id, project.id, ip.to_string());
    actix_web::rt::spawn(async move {
        let entry = crate::db::audit::Entry {
            actor_id: Some(actor_id),
            actor_name: Some(&name),
            token_id: token,
            action,
            target_type: "project",
            target_id: Some(project),
            team_id: team,
            project_id: Some(project),
            detail: Some(detail.to_string()),
            ip: Some(ip),
            status: Some(101),
        };
        if let Err(e) = crate::db::audit::record(&state.db, entry).await {
            tracing::warn!(error = %e, "cannot write audit log");
        }
    });
}

async fn run(
    state: Arc<AppState>,
    session: Session,
    mut stream: actix_ws::MessageStream,
    cookie_login: Option<(Actor, Credential)>,
    wanted: Wanted,
    ip: String,
) {
    let login = match cookie_login {
        Some(login) => Some(login),
        None => await_auth(&state, &mut stream).await,
    };
    let Some((actor, credential)) = login else {
        return refuse(
            session,
            "unauthorized",
            "authenticate first: {\"op\":\"auth\",\"token\":\"...\"}",
        )
        .await;
    };
    let project = match access::project(&state.db, &actor, wanted.project, Action::Configure).await
    {
        Ok(project) => project,
        Err(Denied::NotFound(what)) => {
            return refuse(session, "not_found", &format!("{what} not found")).await;
        }
        Err(Denied::Forbidden(why)) => return refuse(session, "forbidden", &why).await,
        Err(Denied::Db(e)) => {
            tracing::error!(error = %e, "cannot authorize a terminal");
            return refuse(session, "internal", "internal error").await;
        }
    };
    let opened = state
        .tasks
        .open_terminal(Ask {
            project: &project,
            user: actor.user_id,
            fresh: wanted.fresh,
            shell: wanted.shell.clone(),
            cols: wanted.cols,
            rows: wanted.rows,
        })
        .await;
    let terminal = match opened {
        Ok(terminal) => terminal,
        Err(e) => {
            let e = AppError::from(e);
            let code = match &e {
                AppError::Conflict(_) => "conflict",
                AppError::Unavailable(_) => "unavailable",
                AppError::NotFound(_) => "not_found",
                _ => "internal",
            };
            return refuse(session, code, &e.to_string()).await;
        }
    };
    let id = Uuid::now_v7();
    let started = Instant::now();
    audit(
        &state,
        &actor,
        &project,
        "exec.start",
        json!({"session": id, "container": terminal.container, "fresh": wanted.fresh, "shell": wanted.shell}),
        &ip,
    );
    let mut pump = Pump {
        state: state.clone(),
        session,
        credential,
        bytes_in: 0,
        bytes_out: 0,
    };
    let (reason, terminal) = pump.run(&mut stream, terminal).await;
    let code = state.tasks.close_terminal(terminal).await;
    let _ = pump
        .session
        .text(json!({"type": "exit", "exit_code": code, "reason": reason}).to_string())
        .await;
    let _ = pump.session.close(None).await;
    audit(
        &state,
        &actor,
        &project,
        "exec.end",
        json!({
            "session": id,
            "seconds": started.elapsed().as_secs(),
            "bytes_in": pump.bytes_in,
            "bytes_out": pump.bytes_out,
            "reason": reason,
            "exit_code": code,
        }),
        &ip,
    );
}

struct Pump {
    state: Arc<AppState>,
    session: Session,
    credential: Credential,
    bytes_in: u64,
    bytes_out: u64,
}

impl Pump {
    /// Moves bytes until the process ends, the client leaves, or a limit closes it; why.
    async fn run(
        &mut self,
        stream: &mut actix_ws::MessageStream,
        mut terminal: Terminal,
    ) -> (&'static str, Terminal) {
        let exec = &self.state.config.exec;
        let idle = Duration::from_secs(exec.idle_secs);
        let rate = exec.bytes_per_sec;
        let mut last_input = tokio::time::Instant::now();
        let mut window = (Instant::now(), 0u64);
        let mut tick = tokio::time::interval(TICK);
        tick.tick().await;
        let draining = self.state.draining.clone();
        let reason = loop {
            tokio::select! {
                chunk = terminal.attached.output.next() => match chunk {
                    Some(Ok(bytes)) => {
                        // Output beyond the rate waits out the rest of its second.
                        if window.0.elapsed() >= Duration::from_secs(1) {
                            window = (Instant::now(), 0);
                        }
                        if window.1 + bytes.len() as u64 > rate {
                            tokio::time::sleep(Duration::from_secs(1).saturating_sub(window.0.elapsed())).await;
                            window = (Instant::now(), 0);
                        }
                        window.1 += bytes.len() as u64;
                        self.bytes_out += bytes.len() as u64;
                        match tokio::time::timeout(SEND_TIMEOUT, self.session.binary(bytes)).await {
                            Ok(Ok(())) => {}
                            _ => break "the client stopped reading",
                        }
                    }
                    Some(Err(_)) | None => break "the process ended",
                },
                message = stream.next() => match message {
                    Some(Ok(Message::Binary(bytes))) => {
                        last_input = tokio::time::Instant::now();
                        self.bytes_in += bytes.len() as u64;
                        let input = &mut terminal.attached.input;
                        if input.write_all(&bytes).await.is_err() || input.flush().await.is_err() {
                            break "the process ended";
                        }
                    }
                    Some(Ok(Message::Text(text))) => {
                        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                        match value["op"].as_str() {
                            Some("resize") => {
                                let size = |k: &str| value[k].as_u64().map(|v| v.clamp(1, 1000) as u16);
                                if let (Some(cols), Some(rows)) = (size("cols"), size("rows")) {
                                    self.state.tasks.resize_terminal(&terminal, cols, rows).await;
                                }
                            }
                            // A client signed in by its cookie may still send its token.
                            Some("ping" | "auth") => {}
                            _ => {
                                let why = json!({"type": "error", "code": "bad_message", "message": "text frames are {\"op\":\"resize\",\"cols\",\"rows\"}; keystrokes go in binary frames"});
                                let _ = self.session.text(why.to_string()).await;
                            }
                        }
                    }
                    Some(Ok(Message::Ping(bytes))) => {
                        let _ = self.session.pong(&bytes).await;
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break "the client closed it",
                    Some(Ok(_)) => {}
                },
                () = tokio::time::sleep_until(last_input + idle) => {
                    let note = format!("\r\n[shard] closing a terminal idle for {} s\r\n", idle.as_secs());
                    let _ = self.session.binary(note.into_bytes()).await;
                    break "idle";
                }
                _ = tick.tick() => {
                    self.state.tasks.terminal_alive(&terminal).await;
                    if matches!(credential::standing(&self.state, &self.credential).await, Ok(Standing::Revoked)) {
                        break "the login was revoked";
                    }
                }
                () = draining.cancelled() => break "shard is restarting",
            }
        };
        (reason, terminal)
    }
}
