//! `GET /api/v1/ws`: the live WebSocket (actix-ws). One task per connection reads client
//! messages and the hub; every subscription is authorized like its REST resource and
//! re-checked periodically. Replay comes from the database (or the runtime-log buffer) with a
//! per-topic cursor, so delivery has no gap and no duplicate. A slow client only slows its own
//! task: its hub receiver lags, it is told so, and it resumes from its cursor via the database.

use std::collections::HashMap;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{Message, Session};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_stream::StreamExt;
use tokio_stream::StreamMap;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use crate::auth::Actor;
use crate::db::{self, deployment_logs};
use crate::error::AppError;
use crate::hub::wire::{persisted_message, runtime_message, topic_message};
use crate::hub::{Published, Topic};
use crate::state::AppState;
use crate::{access, secrets};
use bytestring::ByteString;

/// Subscriptions one connection may hold.
pub const MAX_SUBSCRIPTIONS: usize = 50;
/// Largest client frame accepted.
pub const MAX_FRAME_BYTES: usize = 16 * 1024;
const AUTH_DEADLINE: Duration = Duration::from_secs(10);
const PING_EVERY: Duration = Duration::from_secs(15);
const IDLE_LIMIT: Duration = Duration::from_secs(60);
/// A send that cannot complete this long means a dead peer: the connection is closed.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
const REPLAY_PAGE: u64 = 1000;

pub async fn connect(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    let cookie_actor = match req.cookie(super::auth::REFRESH_COOKIE) {
        Some(cookie) => actor_for_refresh_cookie(&state, cookie.value()).await?,
        None => None,
    };
    let (response, session, stream) = actix_ws::handle(&req, body)?;
    let stream = stream.max_frame_size(MAX_FRAME_BYTES);
    let conn = Connection {
        state: state.into_inner(),
        session,
        actor: cookie_actor,
        subs: HashMap::new(),
        last_alive: Instant::now(),
        sent: 0,
        sent_at_last_tick: 0,
        events: StreamMap::new(),
    };
    actix_web::rt::spawn(conn.run(stream));
    Ok(response)
}

/// The user of a valid (unused, unrevoked, unexpired) refresh cookie; it is not rotated.
async fn actor_for_refresh_cookie(
    state: &AppState,
    token: &str,
) -> Result<Option<Actor>, AppError> {
    let Some(session) = db::sessions::find_by_hash(&state.db, &secrets::token_hash(token)).await?
    else {
        return Ok(None);
    };
    if session.revoked_at.is_some()
        || session.rotated_at.is_some()
        || session.expires_at <= chrono::Utc::now()
    {
        return Ok(None);
    }
    Ok(db::users::find(&state.db, session.user_id)
        .await?
        .map(|u| Actor {
            user_id: u.id,
            username: u.username,
            role: u.role,
        }))
}

#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
enum ClientMessage {
    Auth {
        token: String,
    },
    Subscribe {
        topic: String,
        #[serde(default)]
        since: i64,
    },
    Unsubscribe {
        topic: String,
    },
    Ping,
}

struct Connection {
    state: Arc<AppState>,
    session: Session,
    actor: Option<Actor>,
    /// Topic → the last seq delivered.
    subs: HashMap<Topic, i64>,
    /// When the peer last showed it is alive: a frame from it, or a message it took from us.
    /// A client far behind on a busy log answers pings late, yet its reading is what lets our
    /// sends complete; a peer that stops reading makes sends block until `SEND_TIMEOUT`.
    last_alive: Instant,
    /// Messages the peer has taken so far; the ping tick turns progress into `last_alive`
    /// (cheaper than reading the clock on every send).
    sent: u64,
    sent_at_last_tick: u64,
    /// One hub receiver per subscribed topic.
    events: StreamMap<Topic, BroadcastStream<Arc<Published>>>,
}

/// The connection ends (closed by either side, or the peer is dead).
struct Closed;

impl Connection {
    async fn run(mut self, mut stream: actix_ws::MessageStream) {
        let opened = Instant::now();
        let mut ticker = tokio::time::interval(PING_EVERY);
        ticker.tick().await;
        let reason = loop {
            let step = tokio::select! {
                message = stream.recv() => match message {
                    Some(Ok(message)) => {
                        self.last_alive = Instant::now();
                        self.on_message(message).await
                    }
                    Some(Err(e)) => {
                        let _ = self.error(None, "bad_frame", &e.to_string()).await;
                        Err(Closed)
                    }
                    None => Err(Closed),
                },
                Some((topic, event)) = recv(&mut self.events) => self.on_event(topic, event).await,
                _ = ticker.tick() => self.on_tick(opened).await,
            };
            if step.is_err() {
                break "closed";
            }
        };
        tracing::debug!(reason, "websocket ended");
        let topics: Vec<Topic> = self.subs.keys().copied().collect();
        for topic in topics {
            self.drop_subscription(topic);
        }
        let _ = self.session.close(None).await;
    }

    /// Forgets `topic`: its hub receiver, and its runtime-log follower share.
    fn drop_subscription(&mut self, topic: Topic) -> bool {
        let existed = self.subs.remove(&topic).is_some();
        if self.events.remove(&topic).is_some() {
            self.state.hub.release(topic);
        }
        if existed && let Topic::ProjectLogs(project) = topic {
            self.state.runtime_logs.unsubscribe(project);
        }
        existed
    }

    async fn send(&mut self, value: Value) -> Result<(), Closed> {
        self.send_text(value.to_string().into()).await
    }

    async fn send_text(&mut self, text: ByteString) -> Result<(), Closed> {
        // Most sends complete at once (the session's queue has room): only a send that has to
        // wait arms the timeout timer.
        let mut sending = std::pin::pin!(self.session.text(text));
        let first = std::future::poll_fn(|cx| Poll::Ready(sending.as_mut().poll(cx))).await;
        let result = match first {
            Poll::Ready(result) => result,
            Poll::Pending => match tokio::time::timeout(SEND_TIMEOUT, sending).await {
                Ok(result) => result,
                Err(_) => return Err(Closed),
            },
        };
        match result {
            Ok(()) => {
                self.sent += 1;
                Ok(())
            }
            Err(_) => Err(Closed),
        }
    }

    async fn error(
        &mut self,
        topic: Option<&str>,
        code: &str,
        message: &str,
    ) -> Result<(), Closed> {
        let mut value = json!({"type": "error", "code": code, "message": message});
        if let Some(topic) = topic {
            value["topic"] = json!(topic);
        }
        self.send(value).await
    }

    async fn on_message(&mut self, message: Message) -> Result<(), Closed> {
        let text = match message {
            Message::Text(text) => text,
            Message::Ping(bytes) => return self.session.pong(&bytes).await.map_err(|_| Closed),
            Message::Pong(_) => return Ok(()),
            Message::Close(_) => return Err(Closed),
            _ => {
                return self
                    .error(None, "bad_request", "send JSON text messages")
                    .await;
            }
        };
        let message: ClientMessage = match serde_json::from_str(&text) {
            Ok(m) => m,
            Err(e) => {
                return self
                    .error(None, "bad_request", &format!("invalid message: {e}"))
                    .await;
            }
        };
        match message {
            ClientMessage::Auth { token } => {
                match super::auth::actor_for_token(&self.state, &token).await {
                    Ok(Some(actor)) => {
                        self.actor = Some(actor);
                        self.send(json!({"type": "authenticated"})).await
                    }
                    _ => {
                        self.error(None, "unauthorized", "invalid or expired token")
                            .await
                    }
                }
            }
            ClientMessage::Ping => self.send(json!({"type": "pong"})).await,
            _ if self.actor.is_none() => {
                self.error(
                    None,
                    "unauthorized",
                    "authenticate first: {\"op\":\"auth\",\"token\":...}",
                )
                .await
            }
            ClientMessage::Subscribe { topic, since } => self.subscribe(&topic, since.max(0)).await,
            ClientMessage::Unsubscribe { topic } => {
                if let Ok(parsed) = topic.parse::<Topic>()
                    && self.drop_subscription(parsed)
                {
                    return self
                        .send(json!({"type": "unsubscribed", "topic": topic}))
                        .await;
                }
                self.error(Some(&topic), "not_subscribed", "no such subscription")
                    .await
            }
        }
    }

    /// Checks the caller may read `topic`; for runtime logs returns the live container.
    async fn authorize(&self, topic: Topic) -> Result<Option<String>, AppError> {
        let actor = self
            .actor
            .as_ref()
            .ok_or_else(|| AppError::Unauthorized("not authenticated".into()))?;
        match topic {
            Topic::Deployment(id) => {
                let deployment = db::deployments::find(&self.state.db, id)
                    .await?
                    .ok_or_else(|| AppError::not_found("deployment"))?;
                access::project(&self.state.db, actor, deployment.project_id)
                    .await
                    .map_err(|_| AppError::not_found("deployment"))?;
                Ok(None)
            }
            Topic::Project(id) => {
                access::project(&self.state.db, actor, id).await?;
                Ok(None)
            }
            Topic::User(id) if id == actor.user_id => Ok(None),
            Topic::User(_) => Err(AppError::NotFound("user not found".into())),
            Topic::System if actor.is_admin() => Ok(None),
            Topic::System => Err(AppError::Forbidden("the system topic is for admins".into())),
            Topic::ProjectLogs(id) => {
                let project = access::project(&self.state.db, actor, id).await?;
                let live = db::deployments::live_for_project(&self.state.db, project.id).await?;
                let container = live.and_then(|d| d.container_id).ok_or_else(|| {
                    AppError::Conflict("the project has no live container".into())
                })?;
                Ok(Some(container))
            }
        }
    }

    async fn subscribe(&mut self, raw: &str, since: i64) -> Result<(), Closed> {
        let topic = match raw.parse::<Topic>() {
            Ok(topic) => topic,
            Err(why) => return self.error(Some(raw), "bad_topic", &why).await,
        };
        if self.subs.contains_key(&topic) {
            return self
                .error(
                    Some(raw),
                    "already_subscribed",
                    "already subscribed to this topic",
                )
                .await;
        }
        if self.subs.len() >= MAX_SUBSCRIPTIONS {
            return self
                .error(
                    Some(raw),
                    "too_many_subscriptions",
                    &format!("at most {MAX_SUBSCRIPTIONS} per connection"),
                )
                .await;
        }
        let container = match self.authorize(topic).await {
            Ok(container) => container,
            Err(e) => {
                let code = match &e {
                    AppError::NotFound(_) => "not_found",
                    AppError::Conflict(_) => "conflict",
                    AppError::Internal(_) => "internal",
                    _ => "forbidden",
                };
                let message = if code == "internal" {
                    "internal error".to_string()
                } else {
                    e.to_string()
                };
                return self.error(Some(raw), code, &message).await;
            }
        };
        // Listen before reading the backlog, so nothing published meanwhile is missed.
        self.events
            .insert(topic, BroadcastStream::new(self.state.hub.subscribe(topic)));
        if let (Topic::ProjectLogs(project), Some(container)) = (topic, container) {
            self.state.runtime_logs.subscribe(
                project,
                container,
                self.state.docker.clone(),
                self.state.hub.clone(),
            );
        }
        self.subs.insert(topic, since);
        self.send(json!({"type": "subscribed", "topic": raw, "since": since}))
            .await?;
        self.catch_up(topic).await
    }

    /// Sends everything after the topic's cursor: from the hub's recent ring while it covers
    /// the cursor (no database read, messages already rendered), otherwise page by page from
    /// the database (or the runtime buffer) until the cursor reaches the ring or the end.
    async fn catch_up(&mut self, topic: Topic) -> Result<(), Closed> {
        loop {
            if self.catch_up_from_memory(topic).await? {
                return Ok(());
            }
            if !self.catch_up_page(topic).await? {
                return Ok(());
            }
        }
    }

    /// True when the recent ring had everything after the cursor (and it was sent).
    async fn catch_up_from_memory(&mut self, topic: Topic) -> Result<bool, Closed> {
        if !matches!(
            topic,
            Topic::Deployment(_) | Topic::Project(_) | Topic::User(_)
        ) {
            return Ok(false);
        }
        let Some(&cursor) = self.subs.get(&topic) else {
            return Ok(true);
        };
        let Some(events) = self.state.hub.recent_since(topic, cursor) else {
            return Ok(false);
        };
        for published in events {
            let (_, seq) = published.event.topic();
            self.deliver(topic, seq, published.wire()).await?;
        }
        Ok(true)
    }

    /// Sends one page after the cursor from the topic's source; true when more may follow.
    async fn catch_up_page(&mut self, topic: Topic) -> Result<bool, Closed> {
        let Some(&cursor) = self.subs.get(&topic) else {
            return Ok(false);
        };
        match topic {
            Topic::Deployment(id) => {
                let lines =
                    match deployment_logs::since(&self.state.db, id, cursor, REPLAY_PAGE).await {
                        Ok(lines) => lines,
                        Err(e) => {
                            self.replay_failed(topic, e).await?;
                            return Ok(false);
                        }
                    };
                let full = lines.len() as u64 == REPLAY_PAGE;
                for line in lines {
                    let message = persisted_message(&topic, &line).to_string();
                    self.deliver(topic, line.seq, message).await?;
                }
                Ok(full)
            }
            Topic::Project(_) | Topic::User(_) => {
                let name = topic.to_string();
                let events =
                    match db::topic_events::since(&self.state.db, &name, cursor, REPLAY_PAGE).await
                    {
                        Ok(events) => events,
                        Err(e) => {
                            self.replay_failed(topic, e).await?;
                            return Ok(false);
                        }
                    };
                let full = events.len() as u64 == REPLAY_PAGE;
                for event in events {
                    let payload = serde_json::from_str(&event.payload).unwrap_or(Value::Null);
                    let message = topic_message(&topic, event.seq, event.ts, &event.kind, payload)
                        .to_string();
                    self.deliver(topic, event.seq, message).await?;
                }
                Ok(full)
            }
            // Live only: a snapshot every few seconds.
            Topic::System => Ok(false),
            Topic::ProjectLogs(project) => {
                let (mut lines, last) = self.state.runtime_logs.since(project, cursor);
                let mut cursor = cursor;
                if cursor > last {
                    // The numbering restarted (the follower stopped with its last listener, or
                    // shard restarted): a reconnecting client's cursor points past every line
                    // now, and keeping it would freeze its log. Start over from the buffer.
                    let note = json!({"type": "notice", "topic": topic.to_string(), "message": format!("runtime log numbering restarted; line {cursor} is gone, resuming from the lines kept now")});
                    self.send(note).await?;
                    cursor = 0;
                    self.subs.insert(topic, cursor);
                    lines = self.state.runtime_logs.since(project, cursor).0;
                }
                if let Some(first) = lines.first()
                    && first.seq > cursor + 1
                {
                    let note = json!({"type": "notice", "topic": topic.to_string(), "message": format!("lines {}..{} are no longer kept (runtime logs keep the last {})", cursor + 1, first.seq - 1, crate::hub::runtime::BUFFER_LINES)});
                    self.send(note).await?;
                }
                for line in lines {
                    let message =
                        runtime_message(&topic, line.seq, line.ts, line.stream, &line.line)
                            .to_string();
                    self.deliver(topic, line.seq, message).await?;
                }
                Ok(false)
            }
        }
    }

    async fn replay_failed(
        &mut self,
        topic: Topic,
        e: impl std::fmt::Display,
    ) -> Result<(), Closed> {
        tracing::warn!(error = %e, %topic, "replay failed");
        self.error(
            Some(&topic.to_string()),
            "internal",
            "replay failed; resubscribe",
        )
        .await
    }

    /// Sends one message if it is the next after the cursor; older ones are duplicates.
    async fn deliver(
        &mut self,
        topic: Topic,
        seq: i64,
        message: impl Into<ByteString>,
    ) -> Result<(), Closed> {
        match self.subs.get_mut(&topic) {
            Some(cursor) if seq > *cursor => {
                *cursor = seq;
                self.send_text(message.into()).await
            }
            _ => Ok(()),
        }
    }

    async fn on_event(
        &mut self,
        topic: Topic,
        event: Result<Arc<Published>, BroadcastStreamRecvError>,
    ) -> Result<(), Closed> {
        let published = match event {
            Ok(published) => published,
            Err(BroadcastStreamRecvError::Lagged(missed)) => {
                let seq = self.subs.get(&topic).copied().unwrap_or(0);
                self.send(json!({"type": "lagged", "topic": topic.to_string(), "seq": seq, "missed_events": missed})).await?;
                return self.catch_up(topic).await;
            }
        };
        let (_, seq) = published.event.topic();
        let Some(cursor) = self.subs.get_mut(&topic) else {
            return Ok(());
        };
        if seq == *cursor + 1 {
            // The common case: the next event, straight through.
            *cursor = seq;
            return self.send_text(published.wire()).await;
        }
        let cursor = *cursor;
        if topic == Topic::System && cursor == 0 {
            // Not persisted: a new subscriber starts from the current snapshot.
            self.subs.insert(topic, seq - 1);
        } else if seq > cursor + 1 {
            // A gap (replay raced the live stream): fill it from the source.
            self.catch_up(topic).await?;
            let persisted = matches!(
                topic,
                Topic::Deployment(_) | Topic::Project(_) | Topic::User(_)
            );
            if persisted && self.subs.get(&topic).is_some_and(|&c| seq != c + 1) {
                // Either the source already had this event (sent), or it could not be read
                // (the client was told): a persisted topic never jumps over a gap.
                return Ok(());
            }
        }
        self.deliver(topic, seq, published.wire()).await
    }

    async fn on_tick(&mut self, opened: Instant) -> Result<(), Closed> {
        if self.actor.is_none() && opened.elapsed() > AUTH_DEADLINE {
            let _ = self
                .error(None, "unauthorized", "authentication timed out")
                .await;
            return Err(Closed);
        }
        if self.sent != self.sent_at_last_tick {
            self.sent_at_last_tick = self.sent;
            self.last_alive = Instant::now();
        }
        if self.last_alive.elapsed() > IDLE_LIMIT {
            return Err(Closed);
        }
        self.session.ping(b"").await.map_err(|_| Closed)?;
        // Access can change (project deleted or given away): re-check every subscription.
        let topics: Vec<Topic> = self.subs.keys().copied().collect();
        for topic in topics {
            if let Err(e) = self.authorize(topic).await
                && !matches!(e, AppError::Internal(_))
            {
                self.drop_subscription(topic);
                self.error(
                    Some(&topic.to_string()),
                    "subscription_ended",
                    &e.to_string(),
                )
                .await?;
            }
        }
        Ok(())
    }
}

/// The next event of any subscribed topic; pending while there is none.
async fn recv(
    events: &mut StreamMap<Topic, BroadcastStream<Arc<Published>>>,
) -> Option<(Topic, Result<Arc<Published>, BroadcastStreamRecvError>)> {
    if events.is_empty() {
        return std::future::pending().await;
    }
    events.next().await
}
