//! Housekeeping that runs hourly as a job: prunes expired and long-revoked refresh tokens.

use chrono::{DateTime, Duration, Utc};

use super::Kind;
use crate::app::AppState;
use crate::db::{self, Db, jobs::NewJob};

const EVERY: Duration = Duration::hours(1);

/// Queues the next run unless one is already queued or running.
pub async fn ensure_scheduled(db: &Db, at: DateTime<Utc>) -> anyhow::Result<()> {
    if !db::jobs::pending_of_kind(db, Kind::Maintenance.as_str()).await? {
        schedule(db, at).await?;
    }
    Ok(())
}

async fn schedule(db: &Db, run_after: DateTime<Utc>) -> anyhow::Result<()> {
    let job = NewJob {
        kind: Kind::Maintenance.as_str(),
        payload: "{}".into(),
        project_id: None,
        max_attempts: 3,
        run_after,
    };
    db::jobs::enqueue(db, job).await?;
    Ok(())
}

pub async fn run(state: &AppState) -> anyhow::Result<()> {
    let pruned = db::sessions::prune(&state.db, Utc::now() - Duration::days(1)).await?;
    tracing::info!(pruned, "pruned refresh tokens");
    // The running row still counts as pending, so enqueue the next run directly.
    schedule(&state.db, Utc::now() + EVERY).await
}
