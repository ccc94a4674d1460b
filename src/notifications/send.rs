//! Sending one notification: a JSON POST for generic webhooks (HMAC-SHA256 of the body in
//! `X-Shard-Signature-256`, the time in `X-Shard-Timestamp` and in the signed body), Slack's
//! and Discord's incoming-webhook shapes, and email over SMTP (lettre). Every send has a
//! timeout; an answer other than 2xx is an error for the queue to retry.

use std::time::Duration;

use anyhow::{Context, anyhow};
use hmac::{Hmac, Mac};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::{Value, json};
use sha2::Sha256;

use super::Notice;
use crate::config::{Config, SmtpConfig, SmtpTls};

const TIMEOUT: Duration = Duration::from_secs(10);

pub struct Sender {
    /// For destinations an admin set (or any, with `git.allow_private_networks`).
    http: reqwest::Client,
    /// For destinations a member set: resolves through the outbound guard.
    guarded: reqwest::Client,
    smtp: SmtpConfig,
}

/// Where a notification goes, and whether the person who set it may reach private networks.
pub struct Destination<'a> {
    pub url: &'a str,
    pub trusted: bool,
}

/// `sha256=<hex>` of HMAC-SHA256(`secret`, `body`).
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Cuts `text` to at most `max` characters.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        text.chars().take(max - 1).chain(['…']).collect()
    }
}

impl Sender {
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let builder = || {
            reqwest::Client::builder()
                .user_agent(concat!("shard/", env!("CARGO_PKG_VERSION")))
                .redirect(reqwest::redirect::Policy::none())
                .timeout(TIMEOUT)
        };
        Ok(Self {
            http: builder().build()?,
            guarded: builder()
                .dns_resolver(std::sync::Arc::new(crate::egress::Guard))
                .build()?,
            smtp: config.smtp.clone(),
        })
    }

    pub fn email_configured(&self) -> bool {
        self.smtp.host.is_some()
    }

    /// POSTs `body`. The error says what a member may know: that a member's destination was
    /// refused or that the delivery failed, never which port answered or how (that would make
    /// the channel a port scanner of the host's networks); the cause goes to shard's own log.
    async fn post(
        &self,
        to: &Destination<'_>,
        body: Vec<u8>,
        headers: &[(&str, String)],
    ) -> anyhow::Result<()> {
        if !to.trusted
            && let Err(refused) = crate::egress::check_literal(to.url)
        {
            return Err(anyhow!("refused: the destination {refused}"));
        }
        let client = if to.trusted {
            &self.http
        } else {
            &self.guarded
        };
        let mut request = client
            .post(to.url)
            .header("content-type", "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.map_err(|e| {
            if let Some(refused) = crate::egress::refusal(&e) {
                return anyhow!("refused: the destination {refused}");
            }
            // reqwest's text names the URL, which for Slack and Discord is the credential.
            let kind = if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "could not connect"
            } else {
                "request failed"
            };
            tracing::debug!(trusted = to.trusted, "a notification delivery {kind}");
            if to.trusted {
                anyhow!("the receiver {kind}")
            } else {
                anyhow!("the delivery failed")
            }
        })?;
        if response.status().is_success() {
            Ok(())
        } else if to.trusted {
            Err(anyhow!("the receiver answered {}", response.status()))
        } else {
            tracing::debug!(status = %response.status(), "a notification delivery was not accepted");
            Err(anyhow!("the delivery failed"))
        }
    }

    pub async fn webhook(
        &self,
        to: &Destination<'_>,
        secret: Option<&str>,
        event: &str,
        ts: chrono::DateTime<chrono::Utc>,
        body: &Value,
    ) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec(body)?;
        let mut headers = vec![
            ("x-shard-event", event.to_string()),
            ("x-shard-timestamp", ts.timestamp().to_string()),
        ];
        if let Some(secret) = secret {
            headers.push(("x-shard-signature-256", signature(secret, &bytes)));
        }
        self.post(to, bytes, &headers).await
    }

    /// Slack incoming webhook: `{"text": ...}` in Slack's mrkdwn.
    pub async fn slack(&self, to: &Destination<'_>, n: &Notice) -> anyhow::Result<()> {
        let mut text = format!("*{}*", cut(&n.title, 200));
        if !n.body.is_empty() {
            text.push('\n');
            text.push_str(&cut(&n.body, 2000));
        }
        if let Some(link) = &n.url {
            text.push_str(&format!("\n<{link}|Open in shard>"));
        }
        let body = json!({"text": text});
        self.post(to, serde_json::to_vec(&body)?, &[]).await
    }

    /// Discord webhook: a short `content` and one embed (title ≤ 256, description ≤ 4096).
    pub async fn discord(&self, to: &Destination<'_>, n: &Notice) -> anyhow::Result<()> {
        let color = match n.event.as_str() {
            "deploy.succeeded" => 0x2e_a0_43,
            e if e.ends_with("failed") || e == "app.crash_loop" => 0xd1_24_2f,
            _ => 0xbf_87_00,
        };
        let mut embed = json!({
            "title": cut(&n.title, 256),
            "description": cut(&n.body, 4096),
            "color": color,
        });
        if let Some(link) = &n.url {
            embed["url"] = json!(link);
        }
        let body = json!({"content": cut(&n.title, 2000), "embeds": [embed]});
        self.post(to, serde_json::to_vec(&body)?, &[]).await
    }

    pub async fn email(&self, to: &str, n: &Notice) -> anyhow::Result<()> {
        let host = self
            .smtp
            .host
            .as_deref()
            .ok_or_else(|| anyhow!("smtp.host is not configured"))?;
        let mut text = n.title.clone();
        if !n.body.is_empty() {
            text.push_str("\n\n");
            text.push_str(&n.body);
        }
        if let Some(link) = &n.url {
            text.push_str(&format!("\n\n{link}\n"));
        }
        let message = Message::builder()
            .from(self.smtp.from.parse().context("smtp.from")?)
            .to(to.parse().context("the channel's address")?)
            .subject(cut(&n.title, 200))
            .header(lettre::message::header::ContentType::TEXT_PLAIN)
            .body(text)?;
        let builder = match self.smtp.tls {
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)?,
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)?,
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
        };
        let mut builder = builder.port(self.smtp.port).timeout(Some(TIMEOUT));
        if let (Some(user), Some(password)) = (&self.smtp.username, &self.smtp.password) {
            builder =
                builder.credentials(lettre::transport::smtp::authentication::Credentials::new(
                    user.clone(),
                    password.expose().to_string(),
                ));
        }
        builder
            .build()
            .send(message)
            .await
            .map_err(|e| anyhow!("the mail server refused: {e}"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hex_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("abc", 4), "abc");
    }
}
