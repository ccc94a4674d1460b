//! Which instance runs the singletons (the metrics collector, the watchdog, ACME renewals):
//! on Postgres, the one holding a session-level advisory lock on a connection it keeps open;
//! when that process dies its connection closes, Postgres releases the lock, and another
//! instance's next attempt (every `RETRY`) takes it over. On SQLite there is one instance per
//! database (the data-dir lock), and it always leads.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseConnection;
use sea_orm::sqlx::{self, Connection};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The advisory lock's key: "leader" in ASCII, so it stands out in `pg_locks` (and differs
/// from the job queue's claim lock, "shard").
pub const LOCK_KEY: i64 = 0x6c65_6164_6572;
/// How often a follower tries to take the lead, and a leader checks it still holds it.
pub const RETRY: Duration = Duration::from_secs(2);

/// Whether this instance leads now; cheap to clone and to ask.
#[derive(Clone)]
pub struct Leadership {
    leading: watch::Receiver<bool>,
}

impl Leadership {
    /// The only instance: it always leads.
    pub fn single() -> Self {
        // The value stays readable after the sender is gone.
        let (_, leading) = watch::channel(true);
        Self { leading }
    }

    pub fn is_leader(&self) -> bool {
        *self.leading.borrow()
    }
}

/// Leadership for an instance on `db`: always on SQLite; on Postgres, campaigned for by the
/// returned `Campaign`, which holds its own connection (opened from `url`) while it runs.
pub fn campaign(db: &DatabaseConnection, url: &str) -> (Leadership, Option<Arc<Campaign>>) {
    if !crate::db::is_postgres(db) {
        return (Leadership::single(), None);
    }
    let (tx, leading) = watch::channel(false);
    let campaign = Campaign {
        url: url.to_string(),
        leading: tx,
    };
    (Leadership { leading }, Some(Arc::new(campaign)))
}

/// The campaign for the lock: app.rs runs it under the supervisor as `leader`.
pub struct Campaign {
    url: String,
    leading: watch::Sender<bool>,
}

impl Campaign {
    /// Holds or waits for the lock until shutdown, trying again `RETRY` after a lost
    /// connection; leadership reads false whenever the lock is not held.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) -> anyhow::Result<()> {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = hold(&self.url, &self.leading) => {}
            }
            let _ = self.leading.send(false);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(RETRY) => {}
            }
        }
        let _ = self.leading.send(false);
        Ok(())
    }
}

/// Opens a connection, tries the lock until it has it, then keeps checking the connection;
/// returns when the connection fails (leadership lost with it).
async fn hold(url: &str, leading: &watch::Sender<bool>) {
    let mut conn = match sqlx::PgConnection::connect(url).await {
        Ok(conn) => conn,
        Err(e) => {
            tracing::warn!(error = %e, "cannot open the leader-election connection");
            return;
        }
    };
    loop {
        let held: Result<bool, _> = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(LOCK_KEY)
            .fetch_one(&mut conn)
            .await;
        match held {
            Ok(true) => break,
            Ok(false) => tokio::time::sleep(RETRY).await,
            Err(e) => {
                tracing::warn!(error = %e, "leader election failed; retrying");
                return;
            }
        }
    }
    tracing::info!("this instance leads: it runs the collector, the watchdog and renewals");
    let _ = leading.send(true);
    loop {
        tokio::time::sleep(RETRY).await;
        let alive: Result<i32, _> = sqlx::query_scalar("SELECT 1").fetch_one(&mut conn).await;
        if let Err(e) = alive {
            tracing::warn!(error = %e, "lost the leader connection; leadership released");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_leader_lock_is_not_the_job_queues_claim_lock() {
        // Holding the claim lock for life would stop every job claim of the installation (and
        // the setup lock, first-run setup on the other instances).
        assert_ne!(super::LOCK_KEY, crate::db::jobs::CLAIM_LOCK);
        assert_ne!(super::LOCK_KEY, crate::db::users::SETUP_LOCK);
    }

    #[test]
    fn a_single_instance_always_leads() {
        assert!(super::Leadership::single().is_leader());
    }
}
