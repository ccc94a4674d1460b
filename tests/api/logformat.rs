//! Server log lines as an operator reads them: `--log-format json` gives one JSON object per
//! line; text into a file has no colour codes; under the journal (`JOURNAL_STREAM` naming the
//! stderr) no timestamps either; migrations are one line.

use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::free_port;
use crate::process::BIN;

/// Runs `shard [args] serve` on a fresh data dir until it listens; returns its stderr.
fn serve_log(args: &[&str], journal: bool) -> String {
    let dir = tempfile::TempDir::new().unwrap();
    let log_path = dir.path().join("stderr.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let meta = log.metadata().unwrap();
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SHARD_DATA_DIR", dir.path().join("data"))
        .env("SHARD_LISTEN", format!("127.0.0.1:{}", free_port()))
        .env("SHARD_LOG__LEVEL", "info")
        .args(args)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(log);
    if journal {
        command.env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()));
    }
    let mut child = command.spawn().unwrap();
    let started = Instant::now();
    let text = loop {
        let text = std::fs::read_to_string(&log_path).unwrap();
        if text.contains("listening on") || started.elapsed() > Duration::from_secs(30) {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(text.contains("listening on"), "{text}");
    text
}

#[test]
fn log_lines_fit_a_collector_a_file_and_the_journal() {
    let json = serve_log(&["--log-format", "json"], false);
    for line in json.lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(value["level"].is_string() && value["fields"]["message"].is_string());
    }

    let text = serve_log(&[], false);
    assert!(!text.contains('\u{1b}'), "colour codes in a file: {text}");
    assert!(text.lines().next().unwrap().starts_with("20"), "{text}");
    // One line for the migrations, none of sea-orm's per-migration lines.
    assert_eq!(text.matches("database migrated").count(), 1, "{text}");
    assert!(!text.contains("Applying migration"), "{text}");

    let journal = serve_log(&[], true);
    assert!(!journal.contains('\u{1b}'), "{journal}");
    assert!(journal.lines().all(|l| !l.starts_with("20")), "{journal}");
    assert!(
        journal.contains(" INFO shard::app: listening on"),
        "{journal}"
    );
}
