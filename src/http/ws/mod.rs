//! `GET /api/v1/ws`: the live WebSocket (actix-ws), transport only. One task per connection
//! reads client messages and its hub receivers; replay comes from each topic's source
//! (`hub::replay`) with a per-topic cursor, so delivery has no gap and no duplicate. Events
//! waiting for the same topic go out as one `batch` message. Subscriptions are authorized like
//! their REST resource and re-checked on every ping tick, and so is the credential: a revoked
//! login or a deleted API token ends the connection, an expired access token must be replaced.

use std::collections::HashMap;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{Message, Session};
use bytestring::ByteString;
use futures_util::FutureExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_stream::StreamExt;
use tokio_stream::StreamMap;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

mod catch_up;
pub(crate) mod credential;
pub mod exec;

use credential::{Credential, login_for_refresh_cookie, login_for_token};

use crate::access::{self, Action};
use crate::auth::Actor;
use crate::db;
use crate::http::error::AppError;
use crate::hub::runtime::LogSource;
use crate::hub::{Delivery, Published, Topic, replay, wire};
use crate::state::AppState;

/// Subscriptions one connection may hold.
pub const MAX_SUBSCRIPTIONS: usize = 50;
/// Largest client frame accepted.
pub const MAX_FRAME_BYTES: usize = 16 * 1024;
/// A batch message holds at most this many events and about this many bytes.
const BATCH_EVENTS: usize = 512;
const BATCH_BYTES: usize = 256 * 1024;
/// Ready hub events handled before the outbox is flushed.
const DRAIN_EVENTS: usize = 1024;
const AUTH_DEADLINE: Duration = Duration::from_secs(10);
const PING_EVERY: Duration = Duration::from_secs(15);
const IDLE_LIMIT: Duration = Duration::from_secs(60);
/// A send that cannot complete this long means a dead peer: the connection is closed.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn connect(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    let cookie_login = match req.cookie(super::auth::REFRESH_COOKIE) {
        Some(cookie) => {
            // The cookie rides along with any page of the same site (apps included).
            super::auth::check_same_origin(&req)?;
            login_for_refresh_cookie(&state, cookie.value()).await?
        }
        None => None,
    };
    let (response, session, stream) = actix_ws::handle(&req, body)?;
    let stream = stream.max_frame_size(MAX_FRAME_BYTES);
    let (actor, credential) = cookie_login.unzip();
    let conn = Connection {
        state: state.into_inner(),
        session,
        actor,
        credential,
        auth_by: Instant::now() + AUTH_DEADLINE,
        subs: HashMap::new(),
        last_alive: Instant::now(),
        sent: 0,
        sent_at_last_tick: 0,
        events: StreamMap::new(),
        outbox: Vec::new(),
        outbox_topic: None,
        outbox_bytes: 0,
    };
    actix_web::rt::spawn(conn.run(stream));
    Ok(response)
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
    credential: Option<Credential>,
    /// An unauthenticated connection is closed after this.
    auth_by: Instant,
    /// Topic → the last seq delivered (or queued in the outbox).
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
    events: StreamMap<Topic, BroadcastStream<Arc<Delivery>>>,
    /// Events of one topic waiting to go out together (rendered JSON, seq order).
    outbox: Vec<ByteString>,
    outbox_topic: Option<Topic>,
    outbox_bytes: usize,
}

/// The connection ends (closed by either side, or the peer is dead).
struct Closed;

impl Connection {
    async fn run(mut self, mut stream: actix_ws::MessageStream) {
        let mut ticker = tokio::time::interval(PING_EVERY);
        ticker.tick().await;
        let mut revocations = self.state.logins.revocations();
        let draining = self.state.draining.clone();
        let mut restarting = false;
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
                Some((topic, event)) = recv(&mut self.events) => self.on_events(topic, event).await,
                _ = ticker.tick() => self.on_tick().await,
                revoked = revocations.recv() => self.on_revocation(revoked).await,
                // Upgraded: what is queued goes out, then the client reconnects with `since`.
                _ = draining.cancelled(), if !restarting => {
                    restarting = true;
                    let _ = self.flush().await;
                    Err(Closed)
                }
            };
            let step = match step {
                Ok(()) => self.flush().await,
                closed => closed,
            };
            if step.is_err() {
                break "closed";
            }
        };
        tracing::debug!(reason, "websocket ended");
        self.drop_all_subscriptions();
        let restart = "shard is restarting: reconnect and resume with since".to_string();
        let close = restarting.then_some((actix_ws::CloseCode::Restart, restart).into());
        let _ = self.session.close(close).await;
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
        if self.outbox_topic == Some(topic) {
            self.outbox.clear();
            self.outbox_topic = None;
            self.outbox_bytes = 0;
        }
        existed
    }

    fn drop_all_subscriptions(&mut self) {
        let topics: Vec<Topic> = self.subs.keys().copied().collect();
        for topic in topics {
            self.drop_subscription(topic);
        }
    }

    /// Sends a control message (after whatever events are waiting, to keep the order).
    async fn send(&mut self, value: Value) -> Result<(), Closed> {
        self.flush().await?;
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

    /// Queues an event message of `topic`; a full outbox, or one of another topic, goes first.
    async fn queue(&mut self, topic: Topic, message: ByteString) -> Result<(), Closed> {
        if self.outbox_topic != Some(topic)
            || self.outbox.len() >= BATCH_EVENTS
            || self.outbox_bytes >= BATCH_BYTES
        {
            self.flush().await?;
        }
        self.outbox_topic = Some(topic);
        self.outbox_bytes += message.len();
        self.outbox.push(message);
        Ok(())
    }

    /// Sends the waiting events: one alone as itself, several as one `batch` message whose
    /// `events` are the very same rendered objects.
    async fn flush(&mut self) -> Result<(), Closed> {
        let Some(topic) = self.outbox_topic.take() else {
            return Ok(());
        };
        self.outbox_bytes = 0;
        let mut events = std::mem::take(&mut self.outbox);
        let text = if events.len() == 1 {
            events.pop().unwrap_or_default()
        } else {
            wire::batch(&topic, &events)
        };
        self.send_text(text).await
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
            ClientMessage::Auth { token } => match login_for_token(&self.state, &token).await {
                Ok(Some((actor, credential))) => {
                    self.actor = Some(actor);
                    self.credential = Some(credential);
                    self.send(json!({"type": "authenticated"})).await
                }
                _ => {
                    self.error(None, "unauthorized", "invalid or expired token")
                        .await
                }
            },
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

    /// Whether the caller may subscribe to `topic`; for an app's logs, where they come from and
    /// the secret values to mask in them.
    async fn authorize(&self, topic: Topic) -> Result<Option<(LogSource, Vec<String>)>, AppError> {
        let actor = self
            .actor
            .as_ref()
            .ok_or_else(|| AppError::Unauthorized("not authenticated".into()))?;
        let db = &self.state.db;
        match topic {
            Topic::Deployment(id) => {
                let deployment = db::deployments::find(db, id)
                    .await?
                    .ok_or_else(|| AppError::not_found("deployment"))?;
                access::project(db, actor, deployment.project_id, Action::Read)
                    .await
                    .map_err(|_| AppError::not_found("deployment"))?;
                Ok(None)
            }
            Topic::Run(id) => {
                let run = db::runs::find_run(db, id)
                    .await?
                    .ok_or_else(|| AppError::not_found("run"))?;
                access::project(db, actor, run.project_id, Action::Read)
                    .await
                    .map_err(|_| AppError::not_found("run"))?;
                Ok(None)
            }
            Topic::Project(id) | Topic::ProjectMetrics(id) => {
                access::project(db, actor, id, Action::Read).await?;
                Ok(None)
            }
            Topic::User(id) if id == actor.user_id => {
                access::personal(actor)?;
                Ok(None)
            }
            Topic::User(_) => Err(AppError::NotFound("user not found".into())),
            Topic::System => {
                access::instance_admin(actor)?;
                Ok(None)
            }
            Topic::ProjectLogs(id) => {
                let project = access::project(db, actor, id, Action::Read).await?;
                let live = db::deployments::live_for_project(db, project.id).await?;
                let runtime = self.state.deployer.runtime();
                let source = live.and_then(|d| runtime.log_source(&d)).ok_or_else(|| {
                    AppError::Conflict("the project has no live container".into())
                })?;
                // The app's output is masked like a build log, for every reader: an app that
                // prints its own secrets does not show them to viewers.
                let opened =
                    crate::deploy::env::for_project(db, &self.state.sealer, &project).await?;
                let masks = opened
                    .into_iter()
                    .filter(|v| v.secret && v.value.len() >= 4)
                    .map(|v| v.value)
                    .collect();
                Ok(Some((source, masks)))
            }
        }
    }

    async fn subscribe(&mut self, raw: &str, since: i64) -> Result<(), Closed> {
        let topic = match raw.parse::<Topic>() {
            Ok(topic) => topic,
            Err(why) => return self.error(Some(raw), "bad_topic", &why).await,
        };
        if self.subs.contains_key(&topic) {
            let why = "already subscribed to this topic";
            return self.error(Some(raw), "already_subscribed", why).await;
        }
        if self.subs.len() >= MAX_SUBSCRIPTIONS {
            let why = format!("at most {MAX_SUBSCRIPTIONS} per connection");
            return self.error(Some(raw), "too_many_subscriptions", &why).await;
        }
        let source = match self.authorize(topic).await {
            Ok(source) => source,
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
        if let (Topic::ProjectLogs(project), Some((source, masks))) = (topic, source) {
            self.state.runtime_logs.subscribe(project, source, masks);
        }
        self.subs.insert(topic, since);
        self.send(json!({"type": "subscribed", "topic": raw, "since": since}))
            .await?;
        self.catch_up(topic).await
    }

    /// Handles one hub event and then every other one already waiting (up to a bound), so
    /// a busy topic's events leave in batches.
    async fn on_events(
        &mut self,
        topic: Topic,
        event: Result<Arc<Delivery>, BroadcastStreamRecvError>,
    ) -> Result<(), Closed> {
        self.on_event(topic, event).await?;
        for _ in 0..DRAIN_EVENTS {
            match self.events.next().now_or_never() {
                Some(Some((topic, event))) => self.on_event(topic, event).await?,
                _ => break,
            }
        }
        Ok(())
    }

    async fn on_event(
        &mut self,
        topic: Topic,
        event: Result<Arc<Delivery>, BroadcastStreamRecvError>,
    ) -> Result<(), Closed> {
        let delivery = match event {
            Ok(delivery) => delivery,
            Err(BroadcastStreamRecvError::Lagged(missed)) => {
                let seq = self.subs.get(&topic).copied().unwrap_or(0);
                self.send(json!({"type": "lagged", "topic": topic.to_string(), "seq": seq, "missed_events": missed})).await?;
                return self.catch_up(topic).await;
            }
        };
        let Some(cursor) = self.subs.get_mut(&topic) else {
            return Ok(());
        };
        if delivery.events.len() > 1 && delivery.first_seq() == *cursor + 1 && delivery.contiguous()
        {
            // The common case on a busy topic: the next run of events, sent as the message
            // every subscriber at this point shares (rendered once, not copied per client).
            *cursor = delivery.last_seq();
            self.flush().await?;
            return self.send_text(delivery.wire()).await;
        }
        for published in &delivery.events {
            self.on_published(topic, published.clone()).await?;
        }
        Ok(())
    }

    async fn on_published(
        &mut self,
        topic: Topic,
        published: Arc<Published>,
    ) -> Result<(), Closed> {
        let (_, seq) = published.event.topic();
        let Some(cursor) = self.subs.get_mut(&topic) else {
            return Ok(());
        };
        if seq == *cursor + 1 {
            // The next event, straight through.
            *cursor = seq;
            return self.queue(topic, published.wire()).await;
        }
        let cursor = *cursor;
        if matches!(topic, Topic::System | Topic::ProjectMetrics(_)) && cursor == 0 {
            // Not persisted: a new subscriber starts from the current snapshot.
            self.subs.insert(topic, seq - 1);
        } else if seq > cursor + 1 {
            // A gap (replay raced the live stream): fill it from the source.
            self.catch_up(topic).await?;
            if replay::is_persisted(topic) && self.subs.get(&topic).is_some_and(|&c| seq != c + 1) {
                // Either the source already had this event (sent), or it could not be read
                // (the client was told): a persisted topic never jumps over a gap.
                return Ok(());
            }
        }
        self.deliver(topic, seq, published.wire()).await
    }

    async fn on_tick(&mut self) -> Result<(), Closed> {
        if self.actor.is_none() && Instant::now() > self.auth_by {
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
        self.check_credential().await?;
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
    events: &mut StreamMap<Topic, BroadcastStream<Arc<Delivery>>>,
) -> Option<(Topic, Result<Arc<Delivery>, BroadcastStreamRecvError>)> {
    if events.is_empty() {
        return std::future::pending().await;
    }
    events.next().await
}
