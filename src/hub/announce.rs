//! What this instance tells the other instances on one Postgres it published
//! (`hub::relay` carries it): runs of persisted events by seq, and metrics samples whole.

use super::{Event, Topic, replay};

/// What this instance tells the others it published.
#[derive(Debug, Clone)]
pub enum Announcement {
    /// Seqs `first..=last` of a persisted topic: they read them from the database.
    Range(Topic, i64, i64),
    /// A small live-only event (a metrics sample), carried whole since nothing stores it by
    /// seq.
    Live(Event),
}

/// Announces the runs of persisted events in `events` (`(topic, first, last)` each) and
/// metrics samples whole. A full outbox drops the announcement: the other instances'
/// subscribers fill a persisted topic's gap from the database at their next event, and a
/// sample missed live is in the stored series.
pub(super) fn announce(outbox: &tokio::sync::mpsc::Sender<Announcement>, events: &[Event]) {
    let mut run: Option<(Topic, i64, i64)> = None;
    let flush = |run: (Topic, i64, i64)| {
        let _ = outbox.try_send(Announcement::Range(run.0, run.1, run.2));
    };
    for event in events {
        let (topic, seq) = event.topic();
        if matches!(topic, Topic::ProjectMetrics(_)) {
            let _ = outbox.try_send(Announcement::Live(event.clone()));
            continue;
        }
        if !replay::is_persisted(topic) {
            continue;
        }
        run = match run {
            Some((t, first, last)) if t == topic && seq == last + 1 => Some((t, first, seq)),
            Some(done) => {
                flush(done);
                Some((topic, seq, seq))
            }
            None => Some((topic, seq, seq)),
        };
    }
    if let Some(done) = run {
        flush(done);
    }
}
