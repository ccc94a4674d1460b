//! Housekeeping that runs hourly as a job: prunes expired refresh tokens and enforces the
//! retention of `[retention]` (old deployment logs, topic events, finished jobs, audit rows,
//! volumes detached too long ago).

use chrono::{DateTime, Duration, Utc};

use super::Kind;
use crate::db::{self, Db, jobs::NewJob};

const EVERY: Duration = Duration::hours(1);

/// Queues the next run unless one is already queued or running.
pub async fn ensure_scheduled(db: &Db, at: DateTime<Utc>) -> anyhow::Result<()> {
    if !db::jobs::pending_of_kind(db, Kind::Maintenance).await? {
        schedule(db, at).await?;
    }
    Ok(())
}

async fn schedule(db: &Db, run_after: DateTime<Utc>) -> anyhow::Result<()> {
    let job = NewJob {
        kind: Kind::Maintenance,
        payload: "{}".into(),
        project_id: None,
        max_attempts: 3,
        run_after,
    };
    db::jobs::enqueue(db, job).await?;
    Ok(())
}

pub async fn run(state: &super::Parts) -> anyhow::Result<()> {
    prune(&state.db, &state.config).await?;
    // Volumes a deleted project left, past `retention.detached_volumes_days` (a failure leaves
    // them for the next run: the engine may be away).
    match state.deployer.expire_detached_volumes().await {
        Ok(0) => {}
        Ok(purged) => tracing::info!(purged, "detached volumes past their retention removed"),
        Err(e) => tracing::warn!(error = %e, "detached volumes not expired this round"),
    }
    // The running row still counts as pending, so enqueue the next run directly.
    schedule(&state.db, Utc::now() + EVERY).await
}

/// One pass of every retention rule.
pub async fn prune(db: &Db, config: &crate::config::Config) -> anyhow::Result<()> {
    let (r, now) = (&config.retention, Utc::now());
    let days = |n: u32| now - Duration::days(i64::from(n));
    let sessions = db::sessions::prune(db, now - Duration::days(1)).await?;
    let logs = db::deployment_logs::prune(db, days(r.deployment_logs_days)).await?;
    let events = db::topic_events::prune(db, days(r.topic_events_days)).await?;
    let jobs = db::jobs::prune_finished(db, days(r.jobs_days)).await?;
    let audit = db::audit::prune(db, days(r.audit_days)).await?;
    let deliveries = db::webhooks::prune(db, days(r.webhook_deliveries_days)).await?;
    let notices =
        db::notification_channels::prune_deliveries(db, days(r.notification_deliveries_days))
            .await?;
    // Invitations are kept a week past their expiry (so a late click says "expired").
    let invitations = db::invitations::prune(db, days(7)).await?;
    let domains = db::domains::expire_pending(db, days(config.domains.pending_days), None).await?;
    tracing::info!(
        sessions,
        logs,
        events,
        jobs,
        audit,
        deliveries,
        notices,
        invitations,
        domains,
        "maintenance pruned old rows"
    );
    Ok(())
}
