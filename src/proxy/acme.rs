//! Automatic certificates by ACME HTTP-01 (`acme.directory_url`): for every routed name — each
//! verified custom domain, each app host under a real `apps.domain`, and the dashboard's
//! public host — shard orders a certificate, answers the challenge on its own listener
//! (`/.well-known/acme-challenge/<token>`, any host), stores it (key 0600) and serves it by
//! SNI at once. With several instances on one database the leading one orders; the pending
//! answers, the account and the certificates (key sealed) are shared through the database, so
//! whichever instance the CA or a browser reaches answers. Certificates are renewed `acme.renew_before_days` before expiry. A failure is
//! recorded on the domain (status and message), retried after `acme.retry_after_secs`, and
//! never touches a listener.

use crate::model::CertState;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use tokio_util::sync::CancellationToken;

use super::tls::Certificates;
use crate::config::Config;
use crate::db::{self, Db};

/// The longest one order may take, validation included.
const ORDER_TIMEOUT: Duration = Duration::from_secs(180);

/// Where certificates, the account and pending answers are shared between instances.
const CERT_PREFIX: &str = "acme-cert:";
const CHALLENGE_PREFIX: &str = "acme-challenge:";
const ACCOUNT_KEY: &str = "acme-account";
/// How often an instance that does not order certificates looks for new ones.
const FOLLOW_EVERY: Duration = Duration::from_secs(5);

/// A certificate as shared through the database.
#[derive(serde::Serialize, serde::Deserialize)]
struct SharedCert {
    chain_pem: String,
    key_pem: String,
}

pub struct Acme {
    db: Db,
    sealer: Arc<crate::secrets::Sealer>,
    /// When each shared certificate this instance serves was written (skips unchanged ones).
    synced: Mutex<HashMap<String, chrono::DateTime<Utc>>>,
    config: Arc<Config>,
    certs: Arc<Certificates>,
    /// Challenge token → key authorization, while an order waits for validation.
    challenges: Mutex<HashMap<String, String>>,
    account: tokio::sync::OnceCell<Account>,
    /// Names whose last attempt failed, and when (retried after `acme.retry_after_secs`).
    failed: Mutex<HashMap<String, Instant>>,
    /// Orders placed in the last hour per team (`quotas.acme_orders_per_hour_per_team`): one
    /// team's names must not use up the CA's limits for the whole installation.
    orders: Mutex<HashMap<uuid::Uuid, std::collections::VecDeque<Instant>>>,
    /// A domain's first failure in a row goes to its project owner's channels.
    notifier: Arc<crate::notifications::Notifier>,
    /// Woken when the set of routed names may have changed (a domain verified, a project added).
    pub wake: tokio::sync::Notify,
}

impl Acme {
    pub fn new(
        db: Db,
        sealer: Arc<crate::secrets::Sealer>,
        config: Arc<Config>,
        certs: Arc<Certificates>,
        notifier: Arc<crate::notifications::Notifier>,
    ) -> Self {
        Self {
            notifier,
            db,
            sealer,
            synced: Mutex::default(),
            config,
            certs,
            challenges: Mutex::default(),
            account: tokio::sync::OnceCell::new(),
            failed: Mutex::default(),
            orders: Mutex::default(),
            wake: tokio::sync::Notify::new(),
        }
    }

    /// The key authorization for an HTTP-01 challenge token, while it is pending: from this
    /// instance's orders, else from the database (another instance's order, the CA having
    /// reached this one).
    pub async fn challenge_response(&self, token: &str) -> Option<String> {
        let mine = self
            .challenges
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(token)
            .cloned();
        if mine.is_some() {
            return mine;
        }
        let key = format!("{CHALLENGE_PREFIX}{token}");
        match db::shared::get(&self.db, &self.sealer, &key).await {
            Ok(answer) => answer.and_then(|a| String::from_utf8(a).ok()),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read a shared ACME challenge");
                None
            }
        }
    }

    /// Takes up certificates other instances issued, then (on the leading instance) checks
    /// every routed name: now, then at `acme.check_interval_secs` or when woken. The others
    /// look for new certificates every few seconds.
    pub async fn run(
        self: Arc<Self>,
        leadership: crate::cluster::Leadership,
        shutdown: CancellationToken,
    ) {
        let interval = Duration::from_secs(self.config.acme.check_interval_secs);
        loop {
            self.take_up_shared().await;
            // One instance orders certificates: the leading one.
            let leading = leadership.is_leader();
            if leading {
                self.check_all().await;
            }
            let wait = if leading {
                interval
            } else {
                interval.min(FOLLOW_EVERY)
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake.notified() => {}
            }
        }
    }

    /// Installs shared certificates this instance does not serve yet (or serves an older
    /// version of); a configured file keeps winning for its name.
    async fn take_up_shared(&self) {
        let versions = match db::shared::versions(&self.db, CERT_PREFIX).await {
            Ok(versions) => versions,
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the shared certificates");
                return;
            }
        };
        for (key, written) in versions {
            let name = &key[CERT_PREFIX.len()..];
            let known = self
                .synced
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(name)
                .copied();
            if known == Some(written) || self.certs.get(name).is_some_and(|c| c.from_file) {
                continue;
            }
            // Only a certificate that changed is read and opened.
            let installed = match db::shared::get(&self.db, &self.sealer, &key).await {
                Ok(Some(value)) => serde_json::from_slice::<SharedCert>(&value)
                    .map_err(anyhow::Error::from)
                    .and_then(|c| self.certs.install(name, &c.chain_pem, &c.key_pem)),
                Ok(None) => continue,
                Err(e) => Err(e.into()),
            };
            match installed {
                Ok(_) => {
                    tracing::info!(name, "took up a certificate another instance issued");
                    self.synced
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(name.to_string(), written);
                }
                Err(e) => {
                    tracing::warn!(name, error = %format!("{e:#}"), "cannot use a shared certificate")
                }
            }
        }
    }

    /// The names shard answers for that can have a public certificate.
    /// Every name that needs a certificate: whether it is a custom domain, and the team whose
    /// quota its orders count against (none for the dashboard's own host).
    async fn wanted(&self) -> anyhow::Result<Vec<(String, bool, Option<uuid::Uuid>)>> {
        let mut names = Vec::new();
        let projects = db::projects::all(&self.db).await?;
        let team_of: HashMap<uuid::Uuid, Option<uuid::Uuid>> = projects
            .iter()
            .map(|p| (p.id, p.team_id.or(Some(p.owner_id))))
            .collect();
        for domain in db::domains::verified(&self.db).await? {
            let team = team_of.get(&domain.project_id).copied().flatten();
            names.push((domain.domain, true, team));
        }
        let apps = self.config.apps.domain.to_ascii_lowercase();
        if is_public(&apps) {
            for project in &projects {
                let team = project.team_id.or(Some(project.owner_id));
                names.push((format!("{}.{apps}", project.slug), false, team));
            }
        }
        if let Some(host) = self
            .config
            .public_url
            .as_deref()
            .and_then(|u| url::Url::parse(u).ok())
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
            .filter(|h| is_public(h))
        {
            names.push((host, false, None));
        }
        Ok(names)
    }

    /// Deletes the certificates of pull-request preview hosts (`pr-<n>-<slug>.<apps domain>`)
    /// that no project routes any more: a closed preview leaves no certificate behind.
    async fn drop_closed_previews(&self, wanted: &[(String, bool, Option<uuid::Uuid>)]) {
        let suffix = format!(".{}", self.config.apps.domain.to_ascii_lowercase());
        for name in self.certs.issued_names() {
            let preview = name
                .strip_suffix(&suffix)
                .is_some_and(crate::validate::preview_shaped);
            if preview && !wanted.iter().any(|(n, _, _)| *n == name) {
                tracing::info!(name, "removing the certificate of a closed preview");
                self.certs.remove(&name);
                if let Err(e) = db::shared::delete(&self.db, &format!("{CERT_PREFIX}{name}")).await
                {
                    tracing::warn!(name, error = %e, "cannot delete a shared certificate");
                }
            }
        }
    }

    async fn check_all(&self) {
        let names = match self.wanted().await {
            Ok(names) => names,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the names that need certificates");
                return;
            }
        };
        {
            let wanted: std::collections::HashSet<&str> =
                names.iter().map(|(n, _, _)| n.as_str()).collect();
            self.failed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .retain(|name, _| wanted.contains(name.as_str()));
        }
        self.drop_closed_previews(&names).await;
        let renew_before = chrono::Duration::days(self.config.acme.renew_before_days as i64);
        let retry_after = Duration::from_secs(self.config.acme.retry_after_secs);
        for (name, is_domain, team) in names {
            if let Some(current) = self.certs.get(&name) {
                if current.from_file {
                    let (status, expiry) = (CertState::File, Some(current.expires_at));
                    self.record(&name, is_domain, status, expiry, None).await;
                    continue;
                }
                if current.expires_at - Utc::now() > renew_before {
                    continue;
                }
            }
            let recently_failed = self
                .failed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&name)
                .is_some_and(|at| at.elapsed() < retry_after);
            if recently_failed {
                continue;
            }
            if name.starts_with("*.") {
                let why = "wildcard certificates need a DNS-01 challenge, which shard does not do; \
                           give the certificate files in proxy.certificates";
                self.fail(&name, is_domain, why.into()).await;
                continue;
            }
            if let Some(team) = team
                && !self.take_order(team)
            {
                if is_domain {
                    let why = "waiting: the team's certificate orders for this hour are used up \
                               (quotas.acme_orders_per_hour_per_team)";
                    self.record(&name, true, CertState::Pending, None, Some(why.into()))
                        .await;
                }
                continue;
            }
            if is_domain {
                self.record(&name, true, CertState::Pending, None, None)
                    .await;
            }
            // A CA that stops answering must not stall every other name's renewal.
            let issued = tokio::time::timeout(ORDER_TIMEOUT, self.issue(&name))
                .await
                .unwrap_or_else(|_| {
                    Err(anyhow::anyhow!(
                        "the ACME server did not finish the order in time"
                    ))
                });
            match issued {
                Ok(expires_at) => {
                    tracing::info!(name, %expires_at, "certificate issued");
                    self.failed
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(&name);
                    self.record(&name, is_domain, CertState::Issued, Some(expires_at), None)
                        .await;
                }
                Err(e) => {
                    let message = format!("{e:#}");
                    tracing::warn!(name, error = %message, "cannot get a certificate");
                    self.fail(&name, is_domain, message).await;
                }
            }
        }
    }

    /// Counts an order for `team` unless its hourly quota is used up (then false).
    fn take_order(&self, team: uuid::Uuid) -> bool {
        let limit = self.config.quotas.acme_orders_per_hour_per_team as usize;
        if limit == 0 {
            return true;
        }
        let mut orders = self.orders.lock().unwrap_or_else(PoisonError::into_inner);
        let hour = Duration::from_secs(3600);
        orders.retain(|_, placed| {
            while placed.front().is_some_and(|at| at.elapsed() > hour) {
                placed.pop_front();
            }
            !placed.is_empty()
        });
        let placed = orders.entry(team).or_default();
        let taken = placed.len() < limit;
        if taken {
            placed.push_back(Instant::now());
        }
        tracing::debug!(%team, taken, placed = placed.len(), limit, "certificate order quota");
        taken
    }

    /// Records a failure (retried after `acme.retry_after_secs`); the first of a streak goes
    /// to the domain's project owner.
    async fn fail(&self, name: &str, is_domain: bool, message: String) {
        let first = !self
            .failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(name);
        self.mark_failed(name);
        if first && is_domain {
            self.notify_failure(name, &message).await;
        }
        self.record(name, is_domain, CertState::Failed, None, Some(message))
            .await;
    }

    /// Tells the domain's project owner (their `certificate.failed` channels).
    async fn notify_failure(&self, name: &str, message: &str) {
        let Ok(Some(domain)) = db::domains::find(&self.db, name).await else {
            return;
        };
        let Ok(Some(project)) = db::projects::find(&self.db, domain.project_id).await else {
            return;
        };
        let notice = crate::notifications::Notice {
            event: "certificate.failed".into(),
            title: format!("No certificate for {name} ({})", project.name),
            body: message.chars().take(1000).collect(),
            project_id: Some(project.id),
            project: Some(project.name.clone()),
            deployment_id: None,
            url: Some(format!(
                "{}/projects/{}/domains",
                self.config.public_url(),
                project.id
            )),
        };
        self.notifier.emit_to_team(&project, notice).await;
    }

    fn mark_failed(&self, name: &str) {
        self.failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_string(), Instant::now());
    }

    async fn record(
        &self,
        name: &str,
        is_domain: bool,
        status: CertState,
        expires_at: Option<chrono::DateTime<Utc>>,
        message: Option<String>,
    ) {
        if !is_domain {
            return;
        }
        if let Err(e) =
            db::domains::record_certificate(&self.db, name, status, expires_at, message).await
        {
            tracing::warn!(error = %e, "cannot record the certificate state");
        }
    }

    async fn account(&self) -> anyhow::Result<&Account> {
        self.account
            .get_or_try_init(|| async {
                let acme = &self.config.acme;
                let directory = acme
                    .directory_url
                    .clone()
                    .context("acme.directory_url is not set")?;
                let builder = || -> anyhow::Result<_> {
                    Ok(match &acme.ca_file {
                        Some(ca) => Account::builder_with_root(ca)
                            .with_context(|| format!("cannot use acme.ca_file {}", ca.display()))?,
                        None => Account::builder()?,
                    })
                };
                let path = self.config.data_dir.join("acme-account.json");
                if let Ok(text) = std::fs::read_to_string(&path)
                    && let Ok(credentials) = serde_json::from_str::<AccountCredentials>(&text)
                {
                    return Ok(builder()?.from_credentials(credentials).await?);
                }
                // The account another instance registered, when this one takes over.
                if let Some(shared) = db::shared::get(&self.db, &self.sealer, ACCOUNT_KEY).await?
                    && let Ok(credentials) = serde_json::from_slice::<AccountCredentials>(&shared)
                {
                    return Ok(builder()?.from_credentials(credentials).await?);
                }
                let contact = acme.email.as_ref().map(|e| format!("mailto:{e}"));
                let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
                let new = NewAccount {
                    contact: &contacts,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                };
                let (account, credentials) = builder()?
                    .create(&new, directory, None)
                    .await
                    .context("cannot register with the ACME server")?;
                let text = serde_json::to_string(&credentials)?;
                crate::secrets::write_private_file(&path, text.as_bytes())?;
                db::shared::put(&self.db, &self.sealer, ACCOUNT_KEY, text.as_bytes(), None).await?;
                Ok(account)
            })
            .await
    }

    /// One order for `name`: HTTP-01 answered here, then the certificate installed.
    async fn issue(&self, name: &str) -> anyhow::Result<chrono::DateTime<Utc>> {
        let account = self.account().await?;
        let identifiers = [Identifier::Dns(name.to_string())];
        let mut order = account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .context("the ACME server refused the order")?;
        let mut tokens = Vec::new();
        let result = async {
            let mut authorizations = order.authorizations();
            while let Some(authorization) = authorizations.next().await {
                let mut authorization = authorization?;
                match authorization.status {
                    AuthorizationStatus::Valid => continue,
                    AuthorizationStatus::Pending => {}
                    other => anyhow::bail!("authorization is {other:?}"),
                }
                let mut challenge = authorization
                    .challenge(ChallengeType::Http01)
                    .context("the ACME server offers no HTTP-01 challenge")?;
                let token = challenge.token.clone();
                let answer = challenge.key_authorization().as_str().to_string();
                self.challenges
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(token.clone(), answer.clone());
                // Any instance may be the one the CA reaches.
                let key = format!("{CHALLENGE_PREFIX}{token}");
                let until = Utc::now() + chrono::Duration::from_std(ORDER_TIMEOUT)?;
                db::shared::put(&self.db, &self.sealer, &key, answer.as_bytes(), Some(until))
                    .await?;
                tokens.push(token);
                challenge.set_ready().await?;
            }
            let retries = RetryPolicy::new().timeout(Duration::from_secs(90));
            let status = order.poll_ready(&retries).await?;
            if status != OrderStatus::Ready {
                let detail = order
                    .refresh()
                    .await
                    .ok()
                    .and_then(|s| s.error.as_ref().map(|e| format!("{e:?}")))
                    .unwrap_or_default();
                anyhow::bail!("the order is {status:?} (the HTTP-01 check failed?) {detail}");
            }
            let key_pem = order.finalize().await?;
            let chain_pem = order.poll_certificate(&retries).await?;
            Ok((chain_pem, key_pem))
        }
        .await;
        {
            let mut challenges = self
                .challenges
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for token in &tokens {
                challenges.remove(token);
            }
        }
        for token in &tokens {
            let _ = db::shared::delete(&self.db, &format!("{CHALLENGE_PREFIX}{token}")).await;
        }
        let (chain_pem, key_pem) = result?;
        let loaded = self.certs.install(name, &chain_pem, &key_pem)?;
        // Every other instance serves it too (the key sealed at rest).
        let shared = serde_json::to_vec(&SharedCert { chain_pem, key_pem })?;
        let key = format!("{CERT_PREFIX}{name}");
        let written = db::shared::put(&self.db, &self.sealer, &key, &shared, None).await?;
        self.synced
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_string(), written);
        Ok(loaded.expires_at)
    }
}

/// A name a public CA can issue for: has a dot, is not an address, not under `localhost`.
fn is_public(name: &str) -> bool {
    name.contains('.')
        && name.parse::<std::net::IpAddr>().is_err()
        && name != "localhost"
        && !name.ends_with(".localhost")
}
