//! Notifications out: a user's channels (generic webhook, Slack, Discord, email) receive the
//! events of their projects. `emit` writes one delivery per listening channel and queues a
//! `notify` job for it; the job sends it (`send.rs`) and records each attempt, retried with the
//! queue's backoff. A channel's destination and signing secret are sealed at rest with the
//! channel id as associated data.

mod send;

use crate::model::ChannelKind;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::config::Config;
use crate::db::jobs::{self as queue, Job, NewJob};
use crate::db::notification_channels::{self as channels, Channel};
use crate::db::{self, Db};
use crate::model::DeliveryState;
use crate::secrets::Sealer;

pub use send::Sender;
/// Attempts per delivery (the queue backs off 2, 4, 8, 16 s between them).
const ATTEMPTS: i32 = 5;

/// The events a channel can listen to.
pub const EVENTS: &[&str] = &[
    "deploy.succeeded",
    "deploy.failed",
    "app.unhealthy",
    "app.restarted",
    "app.crash_loop",
    "certificate.failed",
    "backup.failed",
    "job.failed",
];

/// Something to tell a project's owner.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Notice {
    pub event: String,
    pub title: String,
    pub body: String,
    pub project_id: Option<Uuid>,
    pub project: Option<String>,
    pub deployment_id: Option<Uuid>,
    /// Where to look in the dashboard.
    pub url: Option<String>,
}

/// A `notify` job's payload.
#[derive(Serialize, Deserialize)]
struct Payload {
    delivery_id: Uuid,
}

/// What emitting and sending need.
pub struct Notifier {
    db: Db,
    sealer: Arc<Sealer>,
    job_signal: Arc<tokio::sync::Notify>,
    sender: Sender,
    /// `git.allow_private_networks`: every destination may reach private networks.
    allow_private_networks: bool,
}

impl Notifier {
    pub fn new(
        db: Db,
        sealer: Arc<Sealer>,
        job_signal: Arc<tokio::sync::Notify>,
        config: &Config,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            db,
            sealer,
            job_signal,
            sender: Sender::new(config)?,
            allow_private_networks: config.git.allow_private_networks,
        })
    }

    pub fn sender(&self) -> &Sender {
        &self.sender
    }

    /// Queues `notice` to every channel of `owner` that listens to it; returns how many.
    pub async fn emit(&self, owner: Uuid, notice: &Notice) -> anyhow::Result<usize> {
        let listening =
            channels::listening(&self.db, owner, notice.project_id, &notice.event).await?;
        for channel in &listening {
            self.queue(channel, notice).await?;
        }
        Ok(listening.len())
    }

    /// Queues `notice` to one channel (also the "send test" action).
    pub async fn queue(&self, channel: &Channel, notice: &Notice) -> anyhow::Result<Uuid> {
        let payload = serde_json::to_string(notice)?;
        let delivery =
            channels::insert_delivery(&self.db, channel.id, &notice.event, payload).await?;
        queue::enqueue(
            &self.db,
            NewJob {
                kind: crate::model::JobKind::Notify,
                payload: serde_json::to_string(&Payload {
                    delivery_id: delivery.id,
                })?,
                // Not tied to a project: notifications never wait for a running deploy.
                project_id: None,
                max_attempts: ATTEMPTS,
                run_after: chrono::Utc::now(),
            },
        )
        .await?;
        self.job_signal.notify_waiters();
        Ok(delivery.id)
    }

    /// Queues a project's `notice` to the channels of everyone on its team who hears of it
    /// (`db::teams::notice_recipients`), logging (never failing) when it cannot.
    pub async fn emit_to_team(&self, project: &crate::db::projects::Project, notice: Notice) {
        let recipients = match crate::db::teams::notice_recipients(&self.db, project).await {
            Ok(recipients) => recipients,
            Err(e) => {
                tracing::warn!(event = %notice.event, error = %e, "cannot find who to notify");
                return;
            }
        };
        self.emit_to_all(&recipients, notice).await;
    }

    /// Queues `notice` to the listening channels of each of `users`, logging (never failing)
    /// when it cannot.
    pub async fn emit_to_all(&self, users: &[Uuid], notice: Notice) {
        for user in users {
            self.emit_logged(*user, notice.clone()).await;
        }
    }

    /// Fire and forget: emits, logging (never failing) when it cannot.
    pub async fn emit_logged(&self, owner: Uuid, notice: Notice) {
        if let Err(e) = self.emit(owner, &notice).await {
            tracing::warn!(event = %notice.event, error = %e, "cannot queue notifications");
        }
    }

    /// Runs one `notify` job: one attempt at its delivery, recorded; an error asks the queue
    /// to try again later (until the attempts run out, then the delivery is `failed`).
    pub async fn run_job(&self, job: &Job) -> anyhow::Result<()> {
        let payload: Payload = serde_json::from_str(&job.payload)?;
        let Some(delivery) = channels::find_delivery(&self.db, payload.delivery_id).await? else {
            return Ok(());
        };
        let Some(channel) = channels::find(&self.db, delivery.channel_id).await? else {
            return Ok(());
        };
        let notice: Notice = serde_json::from_str(&delivery.payload)?;
        let result = self.send(&channel, &notice).await;
        let last = job.attempts >= job.max_attempts;
        match result {
            Ok(()) => {
                channels::record_attempt(&self.db, delivery, DeliveryState::Delivered, None)
                    .await?;
                Ok(())
            }
            Err(e) => {
                let why = format!("{e:#}");
                let status = if last {
                    DeliveryState::Failed
                } else {
                    DeliveryState::Pending
                };
                channels::record_attempt(&self.db, delivery, status, Some(why.clone())).await?;
                Err(anyhow::anyhow!(why))
            }
        }
    }

    async fn send(&self, channel: &Channel, notice: &Notice) -> anyhow::Result<()> {
        let target = open(&self.sealer, channel.id, &channel.target_sealed)?;
        let secret = match &channel.secret_sealed {
            Some(sealed) => Some(open(&self.sealer, channel.id, sealed)?),
            None => None,
        };
        let ts = chrono::Utc::now();
        // Who set the destination decides whether it may reach private networks.
        let trusted = self.allow_private_networks
            || crate::db::users::find(&self.db, channel.user_id)
                .await?
                .is_some_and(|u| u.role == crate::model::UserRole::Admin);
        let to = send::Destination {
            url: &target,
            trusted,
        };
        match channel.kind {
            ChannelKind::Webhook => {
                let body = json!({
                    "event": notice.event,
                    "title": notice.title,
                    "body": notice.body,
                    "project_id": notice.project_id,
                    "project": notice.project,
                    "deployment_id": notice.deployment_id,
                    "url": notice.url,
                    "timestamp": ts.timestamp(),
                });
                self.sender
                    .webhook(&to, secret.as_deref(), &notice.event, ts, &body)
                    .await
            }
            ChannelKind::Slack => self.sender.slack(&to, notice).await,
            ChannelKind::Discord => self.sender.discord(&to, notice).await,
            ChannelKind::Email => self.sender.email(&target, notice).await,
        }
    }

    /// Seals a channel's destination or secret.
    pub fn seal(&self, channel: Uuid, clear: &str) -> Vec<u8> {
        self.sealer.seal(clear.as_bytes(), channel.as_bytes())
    }
}

fn open(sealer: &Sealer, channel: Uuid, sealed: &[u8]) -> anyhow::Result<String> {
    let clear = sealer
        .open(sealed, channel.as_bytes())
        .map_err(|_| anyhow::anyhow!("cannot open the channel's sealed settings"))?;
    Ok(String::from_utf8(clear)?)
}

/// What a channel's destination looks like in lists: enough to recognise it, never the
/// secret part of a webhook URL (Slack and Discord put the credential in the path).
pub fn hint(kind: ChannelKind, target: &str) -> String {
    if kind == ChannelKind::Email {
        return target.to_string();
    }
    match url::Url::parse(target) {
        Ok(url) => {
            let host = url.host_str().unwrap_or("");
            let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
            let path = url.path();
            let tail: String = path
                .chars()
                .rev()
                .take(4)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            if path.len() > 8 {
                format!("{}://{host}{port}/…{tail}", url.scheme())
            } else {
                format!("{}://{host}{port}{path}", url.scheme())
            }
        }
        Err(_) => "(unreadable)".into(),
    }
}

/// The deploy outcome of a project, for its owner's channels.
pub fn deploy_notice(
    project: &db::projects::Project,
    deployment: Uuid,
    live: bool,
    error: Option<&str>,
    base: &str,
) -> Notice {
    Notice {
        event: if live {
            "deploy.succeeded"
        } else {
            "deploy.failed"
        }
        .into(),
        title: if live {
            format!("{} is live", project.name)
        } else {
            format!("deploy of {} failed", project.name)
        },
        body: error.unwrap_or("").to_string(),
        project_id: Some(project.id),
        project: Some(project.name.clone()),
        deployment_id: Some(deployment),
        url: Some(format!(
            "{base}/projects/{}/deployments/{deployment}",
            project.id
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_never_show_a_webhook_urls_credential() {
        let slack = hint(
            ChannelKind::Slack,
            "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXsecret",
        );
        assert_eq!(slack, "https://hooks.slack.com/…cret");
        assert!(!slack.contains("T000"));
        assert_eq!(
            hint(ChannelKind::Webhook, "http://127.0.0.1:9000/h"),
            "http://127.0.0.1:9000/h"
        );
        assert_eq!(
            hint(ChannelKind::Email, "ops@example.com"),
            "ops@example.com"
        );
    }
}
