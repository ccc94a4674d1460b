//! Container metrics samples at three resolutions: the collector's raw samples
//! (`resolution_secs` 0), 1-minute and 1-hour roll-ups, each of a *subject*: an app (its
//! project id) or a one-click database (its id). Each resolution is kept for its own
//! retention, so the table holds at most about (24 h / interval + 7 d / 1 min + 90 d / 1 h)
//! rows per subject. Roll-ups average CPU and memory and keep the last value of the
//! cumulative counters (network, block I/O, restarts).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use uuid::Uuid;

use super::Db;
use super::entities::metrics_samples::{self, Column, Entity as Samples};

pub use metrics_samples::Model as Sample;

/// The resolutions samples are stored at, finest first.
pub const RAW: i32 = 0;
pub const MINUTE: i32 = 60;
pub const HOUR: i32 = 3600;

/// One point of a series: a sample or the aggregate of several.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Point {
    pub ts: DateTime<Utc>,
    pub cpu_percent: f64,
    pub memory_bytes: i64,
    pub memory_limit_bytes: i64,
    pub net_rx_bytes: i64,
    pub net_tx_bytes: i64,
    pub block_read_bytes: i64,
    pub block_write_bytes: i64,
    pub restart_count: i64,
}

impl Point {
    fn of(s: &Sample) -> Self {
        Self {
            ts: s.ts,
            cpu_percent: s.cpu_percent,
            memory_bytes: s.memory_bytes,
            memory_limit_bytes: s.memory_limit_bytes,
            net_rx_bytes: s.net_rx_bytes,
            net_tx_bytes: s.net_tx_bytes,
            block_read_bytes: s.block_read_bytes,
            block_write_bytes: s.block_write_bytes,
            restart_count: s.restart_count,
        }
    }
}

/// How long each resolution is kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub raw: Duration,
    pub minute: Duration,
    pub hour: Duration,
}

impl Retention {
    pub fn of(resolution: i32, r: &Retention) -> Duration {
        match resolution {
            RAW => r.raw,
            MINUTE => r.minute,
            _ => r.hour,
        }
    }
}

/// Stores raw samples: `(subject, point)`.
pub async fn insert(db: &Db, points: &[(Uuid, Point)]) -> Result<(), DbErr> {
    insert_resolution(db, RAW, points).await
}

/// Stores samples of one resolution (the roll-ups, and benchmarks that build a history).
pub async fn insert_resolution(
    db: &Db,
    resolution: i32,
    points: &[(Uuid, Point)],
) -> Result<(), DbErr> {
    if points.is_empty() {
        return Ok(());
    }
    for chunk in points.chunks(500) {
        let rows = chunk
            .iter()
            .map(|(subject, p)| metrics_samples::ActiveModel {
                subject_id: Set(*subject),
                ts: Set(p.ts),
                resolution_secs: Set(resolution),
                cpu_percent: Set(p.cpu_percent),
                memory_bytes: Set(p.memory_bytes),
                memory_limit_bytes: Set(p.memory_limit_bytes),
                net_rx_bytes: Set(p.net_rx_bytes),
                net_tx_bytes: Set(p.net_tx_bytes),
                block_read_bytes: Set(p.block_read_bytes),
                block_write_bytes: Set(p.block_write_bytes),
                restart_count: Set(p.restart_count),
                ..Default::default()
            });
        Samples::insert_many(rows).exec(db).await?;
    }
    Ok(())
}

/// The start of the `step`-second bucket `ts` falls in (aligned to the Unix epoch).
pub fn bucket_of(ts: DateTime<Utc>, step: i64) -> DateTime<Utc> {
    let secs = ts.timestamp().div_euclid(step) * step;
    Utc.timestamp_opt(secs, 0).single().unwrap_or(ts)
}

/// Aggregates points into `step`-second buckets, oldest first: CPU and memory averaged, the
/// limit and the cumulative counters as their last (largest) value.
pub fn aggregate(points: impl IntoIterator<Item = Point>, step: i64) -> Vec<Point> {
    let mut buckets: BTreeMap<DateTime<Utc>, (Point, f64, i128, u32)> = BTreeMap::new();
    for p in points {
        let at = bucket_of(p.ts, step);
        let entry = buckets.entry(at).or_insert_with(|| {
            (
                Point {
                    ts: at,
                    ..p.clone()
                },
                0.0,
                0,
                0,
            )
        });
        entry.1 += p.cpu_percent;
        entry.2 += i128::from(p.memory_bytes);
        entry.3 += 1;
        let agg = &mut entry.0;
        agg.memory_limit_bytes = agg.memory_limit_bytes.max(p.memory_limit_bytes);
        agg.net_rx_bytes = agg.net_rx_bytes.max(p.net_rx_bytes);
        agg.net_tx_bytes = agg.net_tx_bytes.max(p.net_tx_bytes);
        agg.block_read_bytes = agg.block_read_bytes.max(p.block_read_bytes);
        agg.block_write_bytes = agg.block_write_bytes.max(p.block_write_bytes);
        agg.restart_count = agg.restart_count.max(p.restart_count);
    }
    buckets
        .into_values()
        .map(|(mut p, cpu, memory, n)| {
            p.cpu_percent = cpu / f64::from(n);
            p.memory_bytes = (memory / i128::from(n)) as i64;
            p
        })
        .collect()
}

async fn rows(
    db: &Db,
    subject: Uuid,
    resolution: i32,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Sample>, DbErr> {
    Samples::find()
        .filter(Column::SubjectId.eq(subject))
        .filter(Column::ResolutionSecs.eq(resolution))
        .filter(Column::Ts.gte(from))
        .filter(Column::Ts.lt(to))
        .order_by_asc(Column::Ts)
        .all(db)
        .await
}

/// Rolls the finished `to`-second buckets of `from`-resolution samples up into `to`
/// samples, for every subject with samples, after the last bucket already rolled up. At most
/// `window` of source samples are read per subject per call.
pub async fn roll_up(
    db: &Db,
    from: i32,
    to: i32,
    now: DateTime<Utc>,
    window: Duration,
) -> Result<usize, DbErr> {
    let subjects: Vec<Uuid> = Samples::find()
        .select_only()
        .column(Column::SubjectId)
        .filter(Column::ResolutionSecs.eq(from))
        .distinct()
        .into_tuple()
        .all(db)
        .await?;
    let end = bucket_of(now, i64::from(to));
    let mut written = 0;
    for subject in subjects {
        let last: Option<DateTime<Utc>> = Samples::find()
            .select_only()
            .column_as(Column::Ts.max(), "last")
            .filter(Column::SubjectId.eq(subject))
            .filter(Column::ResolutionSecs.eq(to))
            .into_tuple()
            .one(db)
            .await?
            .flatten();
        // The first bucket after the last one rolled up that has samples (a stopped app
        // leaves gaps longer than the window).
        let after = last.map(|l| l + Duration::seconds(i64::from(to)));
        let Some(first) = oldest(db, subject, from, after).await? else {
            continue;
        };
        let start = bucket_of(first, i64::from(to));
        let stop = end.min(start + window);
        if stop <= start {
            continue;
        }
        let source = rows(db, subject, from, start, stop).await?;
        let points: Vec<(Uuid, Point)> = aggregate(source.iter().map(Point::of), i64::from(to))
            .into_iter()
            .map(|p| (subject, p))
            .collect();
        written += points.len();
        insert_resolution(db, to, &points).await?;
    }
    Ok(written)
}

/// The time of the subject's oldest sample at `resolution`, at or after `after`.
async fn oldest(
    db: &Db,
    subject: Uuid,
    resolution: i32,
    after: Option<DateTime<Utc>>,
) -> Result<Option<DateTime<Utc>>, DbErr> {
    let mut query = Samples::find()
        .select_only()
        .column_as(Column::Ts.min(), "oldest")
        .filter(Column::SubjectId.eq(subject))
        .filter(Column::ResolutionSecs.eq(resolution));
    if let Some(after) = after {
        query = query.filter(Column::Ts.gte(after));
    }
    query.into_tuple().one(db).await.map(Option::flatten)
}

/// Deletes samples past their resolution's retention; returns how many.
pub async fn prune(db: &Db, now: DateTime<Utc>, retention: &Retention) -> Result<u64, DbErr> {
    let mut deleted = 0;
    for resolution in [RAW, MINUTE, HOUR] {
        let before = now - Retention::of(resolution, retention);
        deleted += Samples::delete_many()
            .filter(Column::ResolutionSecs.eq(resolution))
            .filter(Column::Ts.lt(before))
            .exec(db)
            .await?
            .rows_affected;
    }
    Ok(deleted)
}

/// The samples a series from `from` with points every `step` seconds is read from: the
/// coarsest kept resolution no coarser than `step` whose retention reaches back to `from`,
/// else the finest one that reaches back that far.
pub fn resolution_for(
    from: DateTime<Utc>,
    step: i64,
    now: DateTime<Utc>,
    retention: &Retention,
) -> i32 {
    let covers = |r: &i32| from >= now - Retention::of(*r, retention);
    [HOUR, MINUTE, RAW]
        .into_iter()
        .find(|r| i64::from(*r) <= step && covers(r))
        .or_else(|| [RAW, MINUTE, HOUR].into_iter().find(covers))
        .unwrap_or(HOUR)
}

/// The subject's points in `[from, to)`, `step` seconds apart (aligned), oldest first, read
/// from the resolution that still holds `from` at `now`.
pub async fn series(
    db: &Db,
    subject: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    step: i64,
    now: DateTime<Utc>,
    retention: &Retention,
) -> Result<Vec<Point>, DbErr> {
    let resolution = resolution_for(from, step, now, retention);
    // The newest samples are not rolled up yet: after the last bucket of a resolution, the
    // next finer one carries on.
    let mut cursor = bucket_of(from, step);
    let mut source = Vec::new();
    for r in [HOUR, MINUTE, RAW].into_iter().filter(|r| *r <= resolution) {
        let part = rows(db, subject, r, cursor, to).await?;
        if let Some(last) = part.last() {
            cursor = last.ts + Duration::seconds(i64::from(r.max(1)));
        }
        source.extend(part);
    }
    Ok(aggregate(source.iter().map(Point::of), step))
}

/// Deletes every sample of `subject` (its project or database is being deleted).
pub async fn delete_subject<C: sea_orm::ConnectionTrait>(
    db: &C,
    subject: Uuid,
) -> Result<(), DbErr> {
    Samples::delete_many()
        .filter(Column::SubjectId.eq(subject))
        .exec(db)
        .await?;
    Ok(())
}

/// Rows per resolution (for the host overview and the benchmark).
pub async fn count(db: &Db) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    Samples::find().count(db).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64, cpu: f64, memory: i64, rx: i64) -> Point {
        Point {
            ts: Utc.timestamp_opt(secs, 0).unwrap(),
            cpu_percent: cpu,
            memory_bytes: memory,
            memory_limit_bytes: 1000,
            net_rx_bytes: rx,
            net_tx_bytes: 0,
            block_read_bytes: 0,
            block_write_bytes: 0,
            restart_count: 0,
        }
    }

    #[test]
    fn buckets_average_gauges_and_keep_the_last_counter() {
        let points = vec![
            at(60, 10.0, 100, 5),
            at(75, 30.0, 300, 9),
            at(119, 20.0, 200, 12),
            at(120, 50.0, 500, 20),
        ];
        let out = aggregate(points, 60);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].ts.timestamp(), 60);
        assert_eq!(out[0].cpu_percent, 20.0);
        assert_eq!(out[0].memory_bytes, 200);
        assert_eq!(out[0].net_rx_bytes, 12);
        assert_eq!(out[1].ts.timestamp(), 120);
        assert_eq!(out[1].cpu_percent, 50.0);
    }

    #[test]
    fn a_series_reads_the_coarsest_resolution_that_still_has_its_range() {
        let now = Utc::now();
        let r = Retention {
            raw: Duration::hours(24),
            minute: Duration::days(7),
            hour: Duration::days(90),
        };
        assert_eq!(resolution_for(now - Duration::hours(1), 15, now, &r), RAW);
        assert_eq!(
            resolution_for(now - Duration::hours(1), 60, now, &r),
            MINUTE
        );
        assert_eq!(resolution_for(now - Duration::days(3), 15, now, &r), MINUTE);
        assert_eq!(
            resolution_for(now - Duration::days(3), 300, now, &r),
            MINUTE
        );
        assert_eq!(
            resolution_for(now - Duration::days(30), 3600, now, &r),
            HOUR
        );
    }
}
