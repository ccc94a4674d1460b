//! Backup benchmarks: a one-click PostgreSQL database of about 1 GiB, backed up by shard and by
//! hand, then restored by shard and by hand, in one run. Run: `bench/run-backup` (or
//! `cargo run --release --example backup-bench`). Prints a table.
//!
//! 1. Backup: shard's backup (from the request until the dump is stored whole with its
//!    checksum) against `docker exec … pg_dump -Fc > file` into the same directory.
//! 2. Restore: shard restoring that backup into a new database (from the moment it starts
//!    restoring until it is done) against `docker exec -i … pg_restore` of the same file into
//!    another fresh database, with the same flags.
//! 3. shard's peak RSS over idle while it backs up the 1 GiB database.
//!
//! 4. With moto's S3 server (`SHARD_TEST_MOTO`, which `scripts/test` installs; skipped and
//!    said so when absent): shard's backup of the same database to an S3 bucket (multipart)
//!    against `pg_dump -Fc` piped into boto3's `upload_fileobj` (moto's own client library)
//!    into the same bucket, and shard's peak RSS over idle meanwhile.
//!
//! Also printed: how long shard's verification (restore into a throwaway copy, rows counted)
//! took.
//!
//! Needs a running Docker engine and the local image `shard-test/postgres:15` of
//! `scripts/test-images` (nothing is pulled). `BACKUP_BENCH_ROWS` sets the rows (default
//! 1,300,000 of about 0.8 KiB each on disk: about 1 GiB).

#[path = "app.rs"]
mod app;
use app::{rss_kib, start};

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use shard::db;
use shard::model::{BackupState, DatabaseKind, DatabaseState};
use shard::state::AppState;
use shard::storage::destinations::NewDestination;

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker CLI");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Waits until database `id` is in `state` and answers it.
async fn wait_state(
    app: &AppState,
    id: uuid::Uuid,
    state: DatabaseState,
) -> db::databases::Database {
    loop {
        let d = db::databases::find(&app.db, id).await.unwrap().unwrap();
        assert_ne!(d.status, DatabaseState::Failed, "{:?}", d.message);
        if d.status == state {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn new_database(app: &AppState, name: &str) -> db::databases::Database {
    let d = app
        .databases
        .create(None, name, DatabaseKind::Postgres, None, None)
        .await
        .unwrap();
    wait_state(app, d.id, DatabaseState::Running).await
}

#[tokio::main]
async fn main() {
    let rows: u64 = std::env::var("BACKUP_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_300_000);
    let (state, dir, _owner) = start(|c| {
        c.databases.images.postgres = "shard-test/postgres:{version}".into();
        c.databases.versions.postgres = "15".into();
        c.databases.memory_limit_mb = 1024;
    })
    .await;
    let store = dir.path().join("store");
    state
        .databases
        .add_destination(
            NewDestination::local("bench", &store.to_string_lossy()),
            None,
        )
        .await
        .unwrap();
    let source = new_database(&state, "bench-src").await;
    let container = source.container_id.clone().unwrap();
    // About 1 KiB of hex per row: half of it random (compressible like real text, not like zeros).
    let fill = format!(
        "CREATE TABLE big AS SELECT g AS id, \
         md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text) \
         || md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text) \
         || repeat(md5(g::text), 16) AS payload FROM generate_series(1, {rows}) g"
    );
    let t = Instant::now();
    docker(&[
        "exec",
        &container,
        "psql",
        "-qtA",
        "-U",
        "app",
        "-d",
        "bench_src",
        "-c",
        &fill,
    ]);
    let size: u64 = docker(&[
        "exec",
        &container,
        "psql",
        "-qtA",
        "-U",
        "app",
        "-d",
        "bench_src",
        "-c",
        "SELECT pg_database_size(current_database())",
    ])
    .parse()
    .unwrap();
    eprintln!(
        "filled {rows} rows, {:.2} GiB, in {:.0} s",
        size as f64 / (1u64 << 30) as f64,
        t.elapsed().as_secs_f64()
    );

    println!("\n| measure | shard | by hand | ratio (goal) |");
    println!("|---|---|---|---|");

    // 1. Backup, and shard's peak RSS while it runs.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = rss_kib();
    let t = Instant::now();
    let backup = state
        .databases
        .backup_now(&source, None, None)
        .await
        .unwrap();
    let (stored, stored_secs, peak) = stored(&state, backup.id, t, idle).await;
    let verified_secs = loop {
        let b = db::backups::find(&state.db, backup.id)
            .await
            .unwrap()
            .unwrap();
        match b.status {
            BackupState::Verified => break t.elapsed().as_secs_f64() - stored_secs,
            BackupState::Failed => panic!("the verification failed: {:?}", b.error),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let by_hand = store.join("by-hand.dump");
    let t = Instant::now();
    let out = std::fs::File::create(&by_hand).unwrap();
    let status = pg_dump(&container)
        .stdout(Stdio::from(out))
        .status()
        .unwrap();
    assert!(status.success());
    let hand_secs = t.elapsed().as_secs_f64();
    let dump_size = stored.size_bytes.unwrap_or(0) as f64 / (1u64 << 20) as f64;
    println!(
        "| backup of {:.2} GiB (dump {dump_size:.0} MiB) | {stored_secs:.1} s | pg_dump -Fc > file: {hand_secs:.1} s | {:.2}× (≤ 1.1×) |",
        size as f64 / (1u64 << 30) as f64,
        stored_secs / hand_secs
    );
    println!(
        "| shard's peak RSS over idle during the backup | +{:.1} MiB | idle {:.1} MiB | (≤ +32 MiB) |",
        peak.saturating_sub(idle) as f64 / 1024.0,
        idle as f64 / 1024.0
    );

    // 2. Restore into a new database: shard's, then by hand into another fresh one.
    let target = state.databases.restore_new(&stored, None).await.unwrap();
    // Timed from when it starts restoring (the new database has come up) until done.
    let mut restoring_since = None;
    let done = loop {
        let d = db::databases::find(&state.db, target.id)
            .await
            .unwrap()
            .unwrap();
        let message = d.message.clone().unwrap_or_default();
        if d.status == DatabaseState::Restoring && restoring_since.is_none() {
            restoring_since = Some(Instant::now());
        }
        if d.status == DatabaseState::Running && message.contains("restore") {
            break d;
        }
        assert_ne!(d.status, DatabaseState::Failed, "{message}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let shard_restore = restoring_since.map_or(0.0, |t| t.elapsed().as_secs_f64());
    let message = done.message.unwrap_or_default();
    assert!(message.contains("restored from backup"), "{message}");
    let fresh = new_database(&state, "bench-hand").await;
    let file = std::fs::File::open(store.join(&stored.object_key)).unwrap();
    let t = Instant::now();
    let status = Command::new("docker")
        .args([
            "exec",
            "-i",
            fresh.container_id.as_deref().unwrap(),
            "pg_restore",
            "--no-owner",
            "--exit-on-error",
            "--single-transaction",
            "-U",
            "app",
            "-d",
            "bench_hand",
        ])
        .stdin(Stdio::from(file))
        .status()
        .unwrap();
    assert!(status.success());
    let hand_restore = t.elapsed().as_secs_f64();
    println!(
        "| restore into a new database | {shard_restore:.1} s | pg_restore < file: {hand_restore:.1} s | {:.2}× (≤ 1.1×) |",
        shard_restore / hand_restore
    );
    println!(
        "| verification (restore into a throwaway copy, rows counted) | {verified_secs:.1} s | | |"
    );
    s3(&state, &source, &container).await;
    for d in db::databases::list(&state.db, None).await.unwrap() {
        let _ = state.databases.delete(&d).await;
    }
}

/// Waits until `backup` is stored (or fails); it, its time from `t`, and shard's peak RSS
/// KiB meanwhile (from `peak`).
async fn stored(
    state: &AppState,
    backup: uuid::Uuid,
    t: Instant,
    mut peak: u64,
) -> (db::backups::Backup, f64, u64) {
    loop {
        peak = peak.max(rss_kib());
        let b = db::backups::find(&state.db, backup).await.unwrap().unwrap();
        match b.status {
            BackupState::Succeeded | BackupState::Verified => {
                return (b, t.elapsed().as_secs_f64(), peak);
            }
            BackupState::Failed => panic!("the backup failed: {:?}", b.error),
            BackupState::Running => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// 4. The same backup to an S3 bucket (moto), by shard and by hand.
async fn s3(state: &AppState, source: &db::databases::Database, container: &str) {
    let Ok(moto) = std::env::var("SHARD_TEST_MOTO") else {
        println!("| backup to S3 | skipped: SHARD_TEST_MOTO (moto_server) is not set | | |");
        return;
    };
    let port = 29_517;
    let mut server = Command::new(&moto)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server starts");
    let endpoint = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for _ in 0..300 {
        if client.put(format!("{endpoint}/bench")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut new = NewDestination::local("bench-s3", "");
    new.kind = shard::model::DestinationKind::S3;
    new.path = None;
    new.endpoint = Some(endpoint.clone());
    new.bucket = Some("bench".into());
    new.access_key = Some("AKIABENCH".into());
    new.secret_key = Some("bench-secret".into());
    let destination = state.databases.add_destination(new, None).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = rss_kib();
    let t = Instant::now();
    let backup = state
        .databases
        .backup_now(source, Some(destination.id), None)
        .await
        .unwrap();
    let (_, secs, peak) = stored(state, backup.id, t, idle).await;
    // Its verification (a restore, on the same cores) ends before the by-hand run starts.
    loop {
        let b = db::backups::find(&state.db, backup.id)
            .await
            .unwrap()
            .unwrap();
        match b.status {
            BackupState::Verified => break,
            BackupState::Failed => panic!("the S3 backup failed to verify: {:?}", b.error),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    // By hand: pg_dump piped into boto3's multipart upload to the same bucket.
    let python = std::path::Path::new(&moto).with_file_name("python3");
    let upload = format!(
        "import sys, boto3; boto3.client('s3', endpoint_url='{endpoint}', region_name='us-east-1', \
         aws_access_key_id='AKIABENCH', aws_secret_access_key='x').upload_fileobj(sys.stdin.buffer, \
         'bench', 'by-hand.dump')"
    );
    let t = Instant::now();
    let mut dump = pg_dump(container).stdout(Stdio::piped()).spawn().unwrap();
    let status = Command::new(&python)
        .args(["-c", &upload])
        .stdin(Stdio::from(dump.stdout.take().unwrap()))
        .status()
        .unwrap();
    assert!(status.success() && dump.wait().unwrap().success());
    let hand = t.elapsed().as_secs_f64();
    println!(
        "| backup to S3 (moto), stored whole | {secs:.1} s | pg_dump -Fc piped to boto3 upload_fileobj: {hand:.1} s | {:.2}× (≤ 1.1×) |",
        secs / hand
    );
    println!(
        "| shard's peak RSS over idle during the S3 backup | +{:.1} MiB | idle {:.1} MiB | (≤ +32 MiB) |",
        peak.saturating_sub(idle) as f64 / 1024.0,
        idle as f64 / 1024.0
    );
    let _ = server.kill();
    let _ = server.wait();
}

/// `pg_dump -Fc` of the bench database in its container, done by hand.
fn pg_dump(container: &str) -> Command {
    let mut command = Command::new("docker");
    command.args([
        "exec",
        container,
        "pg_dump",
        "-Fc",
        "-U",
        "app",
        "-d",
        "bench_src",
    ]);
    command
}
