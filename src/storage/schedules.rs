//! Backup schedules and retention. A database's schedule is a cron expression (UTC; 5 fields,
//! or 6 with seconds, or `@daily`-style), one or more destinations, and what to keep. A loop
//! looks for due schedules every `TICK`; a run is claimed by moving `next_run_at` forward
//! with a conditional update, so under several instances each run happens once, and a run
//! missed while shard was down happens once at the next start. A run is skipped while a
//! backup of the database is still running (runs never pile up) or while it is not running.
//!
//! Retention runs after every backup of a scheduled database, per destination: a stored
//! backup is kept when it is one of the newest `keep_last` or younger than `keep_days` (either
//! rule keeps it; with neither set, the newest 7 are kept). The newest verified backup is
//! never removed, whatever the rules. A removed backup's file or object goes first, its row
//! after; one that cannot be removed stays for the next round. Failed backups (no file) are
//! kept as a record, the newest 20 per database.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::databases::{Databases, StorageError};
use super::store::Store;
use crate::db::{self, backups::Backup, backups::Schedule, backups::Source};
use crate::model::{BackupState, DatabaseState};

/// How often due schedules are looked for.
const TICK: Duration = Duration::from_secs(15);
/// The newest verified backup of each scheduled source, per destination, is verified again
/// once its last check is this old; looked for this often.
pub const REVERIFY_AFTER: chrono::Duration = chrono::Duration::days(7);
const REVERIFY_EVERY: Duration = Duration::from_secs(3600);
/// Kept when a schedule names no rule.
pub const DEFAULT_KEEP_LAST: i32 = 7;
/// Failed backups kept per database, as a record.
const FAILED_KEPT: u64 = 20;
/// At most this many destinations per schedule, and this much kept.
const MAX_DESTINATIONS: usize = 5;
const MAX_KEEP_LAST: i32 = 1000;
const MAX_KEEP_DAYS: i32 = 3650;

/// A schedule to set.
pub struct NewSchedule {
    pub cron: String,
    pub destination_ids: Vec<Uuid>,
    pub keep_last: Option<i32>,
    pub keep_days: Option<i32>,
    /// The instance's schedule only: the age public keys (`age1…`) its archives are sealed to.
    pub recipients: Vec<String>,
}

/// At most this many recipients on the instance's schedule.
const MAX_RECIPIENTS: usize = 10;

/// The next time `cron` fires after `after`; why the expression is not one.
pub fn next_run(cron: &str, after: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let parsed = croner::Cron::from_str(cron.trim()).map_err(|e| e.to_string())?;
    parsed
        .find_next_occurrence(&after, false)
        .map_err(|e| e.to_string())
}

/// The destinations a schedule sends to.
pub fn destinations_of(schedule: &Schedule) -> Vec<Uuid> {
    serde_json::from_str(&schedule.destination_ids).unwrap_or_default()
}

/// The age recipients of the instance's schedule.
pub fn recipients_of(schedule: &Schedule) -> Vec<String> {
    schedule
        .recipients
        .as_deref()
        .and_then(|r| serde_json::from_str(r).ok())
        .unwrap_or_default()
}

/// Which of `stored` (one destination's, newest first) retention removes at `now`.
fn to_remove(
    stored: &[Backup],
    keep_last: Option<i32>,
    keep_days: Option<i32>,
    now: DateTime<Utc>,
) -> Vec<&Backup> {
    let keep_last = match (keep_last, keep_days) {
        (None, None) => Some(DEFAULT_KEEP_LAST),
        (last, _) => last,
    };
    let newest_verified = stored
        .iter()
        .find(|b| b.status == BackupState::Verified)
        .map(|b| b.id);
    stored
        .iter()
        .enumerate()
        .filter(|(i, b)| {
            let by_count = keep_last.is_some_and(|n| (*i as i64) < i64::from(n));
            let by_age =
                keep_days.is_some_and(|d| now - b.started_at < chrono::Duration::days(d.into()));
            !by_count && !by_age && Some(b.id) != newest_verified
        })
        .map(|(_, b)| b)
        .collect()
}

impl Databases {
    /// Sets the backup schedule of `source` (a database or a volume); answers it.
    pub async fn set_schedule(
        &self,
        source: Source,
        new: NewSchedule,
        by: Option<Uuid>,
    ) -> Result<Schedule, StorageError> {
        let invalid = |field, message: String| StorageError::Invalid { field, message };
        let now = Utc::now();
        let next = next_run(&new.cron, now).map_err(|e| {
            invalid(
                "cron",
                format!("is not a cron expression ({e}); e.g. '0 3 * * *' is daily at 03:00 UTC"),
            )
        })?;
        if new.destination_ids.is_empty() || new.destination_ids.len() > MAX_DESTINATIONS {
            return Err(invalid(
                "destination_ids",
                format!("name 1 to {MAX_DESTINATIONS} destinations"),
            ));
        }
        let mut ids = new.destination_ids.clone();
        ids.sort();
        ids.dedup();
        for id in &ids {
            if db::backups::destination(&self.db, *id).await?.is_none() {
                return Err(invalid("destination_ids", format!("no destination {id}")));
            }
        }
        if new
            .keep_last
            .is_some_and(|n| !(1..=MAX_KEEP_LAST).contains(&n))
        {
            return Err(invalid(
                "keep_last",
                format!("must be 1 to {MAX_KEEP_LAST}"),
            ));
        }
        if new
            .keep_days
            .is_some_and(|n| !(1..=MAX_KEEP_DAYS).contains(&n))
        {
            return Err(invalid(
                "keep_days",
                format!("must be 1 to {MAX_KEEP_DAYS}"),
            ));
        }
        let recipients = match source {
            Source::Instance => {
                if new.recipients.is_empty() || new.recipients.len() > MAX_RECIPIENTS {
                    return Err(invalid(
                        "recipients",
                        format!(
                            "name 1 to {MAX_RECIPIENTS} age public keys (age1…, from `age-keygen`); \
                             the archives are encrypted to them and shard keeps no key that opens them"
                        ),
                    ));
                }
                super::instance::archive::recipients(&new.recipients)
                    .map_err(|e| invalid("recipients", e.to_string()))?;
                Some(serde_json::to_string(&new.recipients).map_err(anyhow::Error::from)?)
            }
            _ if !new.recipients.is_empty() => {
                return Err(invalid(
                    "recipients",
                    "only the instance's schedule names recipients".into(),
                ));
            }
            _ => None,
        };
        let row = Schedule {
            id: Uuid::now_v7(),
            database_id: source.database(),
            volume_id: source.volume(),
            cron: new.cron.trim().to_string(),
            destination_ids: serde_json::to_string(&ids).map_err(anyhow::Error::from)?,
            keep_last: new.keep_last,
            keep_days: new.keep_days,
            next_run_at: next,
            last_run_at: None,
            updated_by: by,
            updated_at: now,
            recipients,
        };
        Ok(db::backups::set_schedule(&self.db, source, row).await?)
    }

    /// Runs due schedules until `stop`.
    pub async fn run_schedules(self: Arc<Self>, stop: CancellationToken) -> anyhow::Result<()> {
        let mut reverified = tokio::time::Instant::now();
        loop {
            if reverified.elapsed() >= REVERIFY_EVERY {
                reverified = tokio::time::Instant::now();
                let this = self.clone();
                tokio::spawn(async move {
                    if let Err(e) = this.reverify_due(Utc::now()).await {
                        tracing::warn!(error = %format!("{e:#}"), "backups not verified again this round");
                    }
                });
            }
            if let Err(e) = self.run_due(Utc::now()).await {
                tracing::warn!(error = %e, "backup schedules not looked at this round");
            }
            // Backups another instance was running when it died are failed in time.
            if let Err(e) = self.fail_orphans(None).await {
                tracing::warn!(error = %format!("{e:#}"), "orphaned backups not looked at this round");
            }
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = tokio::time::sleep(TICK) => {}
            }
        }
    }

    /// Verifies again, one after the other, the newest verified backup of each scheduled
    /// source in each of its destinations whose last check is older than `REVERIFY_AFTER`
    /// (a backup that went bad in its store is then `failed` and announced); answers them.
    pub async fn reverify_due(self: &Arc<Self>, now: DateTime<Utc>) -> anyhow::Result<Vec<Uuid>> {
        let before = now - REVERIFY_AFTER;
        let mut checked = Vec::new();
        for schedule in db::backups::schedules(&self.db, 1000).await? {
            let source = Source::of_schedule(&schedule);
            for destination in destinations_of(&schedule) {
                let stored = db::backups::stored_in(&self.db, source, destination).await?;
                let newest = stored.iter().find(|b| b.status == BackupState::Verified);
                if let Some(backup) = newest
                    && backup.verified_at.is_none_or(|at| at < before)
                {
                    self.verify_now(&backup.id).await;
                    checked.push(backup.id);
                }
            }
        }
        Ok(checked)
    }

    /// Starts every schedule due at `now` that this instance claims.
    pub async fn run_due(self: &Arc<Self>, now: DateTime<Utc>) -> anyhow::Result<()> {
        for schedule in db::backups::due_schedules(&self.db, now).await? {
            let next = next_run(&schedule.cron, now).map_err(anyhow::Error::msg)?;
            if !db::backups::claim_run(&self.db, schedule.id, schedule.next_run_at, next).await? {
                continue; // another instance has it
            }
            if Source::of_schedule(&schedule) == Source::Instance {
                if db::backups::running_for(&self.db, Source::Instance).await? {
                    tracing::info!(
                        "a scheduled instance backup is skipped: the last one still runs"
                    );
                    continue;
                }
                let recipients = recipients_of(&schedule);
                for destination in destinations_of(&schedule) {
                    if let Err(e) = self
                        .instance_backup_now(Some(destination), recipients.clone(), None)
                        .await
                    {
                        tracing::warn!(%destination, error = %e, "a scheduled instance backup did not start");
                    }
                }
                continue;
            }
            if let Some(volume) = schedule.volume_id {
                if db::backups::running_for(&self.db, Source::Volume(volume)).await? {
                    tracing::info!(%volume, "a scheduled volume backup is skipped: the last one still runs");
                    continue;
                }
                let Some(volume) = db::volumes::find(&self.db, volume).await? else {
                    continue;
                };
                for destination in destinations_of(&schedule) {
                    if let Err(e) = self
                        .volume_backup_now(&volume, Some(destination), None)
                        .await
                    {
                        tracing::warn!(volume = %volume.name, %destination, error = %e, "a scheduled volume backup did not start");
                    }
                }
                continue;
            }
            let Some(id) = schedule.database_id else {
                continue;
            };
            let Some(database) = db::databases::find(&self.db, id).await? else {
                continue;
            };
            if database.status != DatabaseState::Running {
                tracing::info!(database = %database.name, status = %database.status, "a scheduled backup is skipped: the database is not running");
                continue;
            }
            if db::backups::running_for(&self.db, Source::Database(database.id)).await? {
                tracing::info!(database = %database.name, "a scheduled backup is skipped: the last one still runs");
                continue;
            }
            for destination in destinations_of(&schedule) {
                if let Err(e) = self.backup_now(&database, Some(destination), None).await {
                    tracing::warn!(database = %database.name, %destination, error = %e, "a scheduled backup did not start");
                }
            }
        }
        Ok(())
    }

    /// Applies the retention of `source`'s schedule to each destination it backs up to, and
    /// keeps the newest failed records only.
    pub(super) async fn apply_retention(&self, source: Source) -> anyhow::Result<()> {
        let Some(schedule) = db::backups::schedule(&self.db, source).await? else {
            return Ok(());
        };
        for id in destinations_of(&schedule) {
            let Some(destination) = db::backups::destination(&self.db, id).await? else {
                continue;
            };
            let store = Store::open(&destination, &self.sealer).map_err(anyhow::Error::msg)?;
            let stored = db::backups::stored_in(&self.db, source, id).await?;
            let removed = to_remove(&stored, schedule.keep_last, schedule.keep_days, Utc::now());
            for backup in removed {
                match store.remove(&backup.object_key).await {
                    Ok(()) => db::backups::delete(&self.db, backup.id).await?,
                    Err(e) => {
                        tracing::warn!(backup = %backup.id, error = %e, "an old backup stays until the next round");
                    }
                }
            }
        }
        for id in db::backups::failed_beyond(&self.db, source, FAILED_KEPT).await? {
            db::backups::delete(&self.db, id).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backup(days_ago: i64, status: BackupState) -> Backup {
        Backup {
            id: Uuid::now_v7(),
            database_id: None,
            source_name: "db".into(),
            source_kind: crate::model::BackupKind::Postgres,
            volume_id: None,
            runner: None,
            heartbeat_at: None,
            destination_id: None,
            status,
            step: None,
            error: None,
            object_key: "k".into(),
            size_bytes: None,
            sha256: None,
            source_counts: None,
            created_by: None,
            started_at: Utc::now() - chrono::Duration::days(days_ago),
            finished_at: None,
            verified_at: None,
        }
    }

    #[test]
    fn cron_expressions_give_the_next_run_in_utc() {
        let at = DateTime::parse_from_rfc3339("2026-12-05T10:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let next = next_run("0 3 * * *", at).unwrap();
        assert_eq!(next.to_rfc3339(), "2026-12-06T03:00:00+00:00");
        assert_eq!(
            next_run("*/15 * * * *", at).unwrap().to_rfc3339(),
            "2026-12-05T10:45:00+00:00"
        );
        assert!(next_run("@daily", at).is_ok());
        for bad in ["", "61 * * * *", "every day", "* * * *"] {
            assert!(next_run(bad, at).is_err(), "{bad}");
        }
    }

    #[test]
    fn retention_keeps_the_newest_the_young_and_the_newest_verified() {
        use BackupState::{Succeeded, Verified};
        let now = Utc::now();
        // Newest first: 0 and 1 days old unverified, then verified ones older.
        let stored = vec![
            backup(0, Succeeded),
            backup(1, Succeeded),
            backup(2, Verified),
            backup(3, Verified),
            backup(10, Verified),
        ];
        let ids = |v: Vec<&Backup>| v.iter().map(|b| b.id).collect::<Vec<_>>();
        // Keep the last 2: the two newest, and the newest verified one.
        assert_eq!(
            ids(to_remove(&stored, Some(2), None, now)),
            vec![stored[3].id, stored[4].id]
        );
        // Keep 5 days: all but the 10-day-old one.
        assert_eq!(
            ids(to_remove(&stored, None, Some(5), now)),
            vec![stored[4].id]
        );
        // Either rule keeps: last 1 or 2 days keeps 0 and 1 (and 2, the newest verified).
        assert_eq!(
            ids(to_remove(&stored, Some(1), Some(2), now)),
            vec![stored[3].id, stored[4].id]
        );
        // No rule: the newest 7.
        assert!(to_remove(&stored, None, None, now).is_empty());
    }
}
