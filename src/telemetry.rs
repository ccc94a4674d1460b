//! Tracing setup on stderr, filtered by `RUST_LOG` or `log.level`:
//!
//! - `text` on a terminal: compact lines with colours (`NO_COLOR` turns them off);
//! - `text` under systemd (`JOURNAL_STREAM` names our stderr) or into a pipe or file: the same
//!   lines without colours, and without timestamps under the journal (it stamps each line);
//! - `json` (`log.format`, or `--log-format json`): one JSON object per line, for collectors.
//!
//! Migrations log one line (`database migrated`), the rest at debug: sea-orm's per-migration
//! lines, like actix-server's start-up chatter, are held to `warn` unless the filter names
//! `sea_orm_migration` (or `actix_server`).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Whether stderr is the journal's stream (systemd sets `JOURNAL_STREAM=<dev>:<inode>`).
fn under_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(stream) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(stderr) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    stream == format!("{}:{}", stderr.dev(), stderr.ino())
}

pub fn init(log: &LogConfig) {
    let mut filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&log.level));
    let named = filter.to_string();
    for noisy in ["sea_orm_migration", "actix_server"] {
        if !named.contains(noisy)
            && let Ok(quiet) = format!("{noisy}=warn").parse()
        {
            filter = filter.add_directive(quiet);
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let journal = under_journal();
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let result = match log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text if journal => builder.compact().with_ansi(false).without_time().try_init(),
        LogFormat::Text => builder.compact().with_ansi(colour).try_init(),
    };
    // A second init (tests build many apps in one process) keeps the first subscriber.
    let _ = result;
}
