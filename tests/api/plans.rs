//! Golden build plans: every directory under `tests/plans/` is a repository (`tree/`), maybe
//! project settings (`project.toml`: the overrides, `dockerfile`, `build_args`), and what
//! planning it must give, byte for byte: `plan.json` and `Dockerfile.expected`, or
//! `error.txt`. Planned with the default `[build]` configuration (the official images).
//! `SHARD_BLESS=1` rewrites the expectations from the planner (then read the diff).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use shard::build::{self, Overrides, Settings};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ProjectFile {
    #[serde(flatten)]
    overrides: OverridesFile,
    #[serde(default)]
    dockerfile: String,
    #[serde(default)]
    build_args: Vec<String>,
    #[serde(default)]
    volume_paths: Vec<String>,
}

#[derive(Deserialize, Default)]
struct OverridesFile {
    root_dir: Option<String>,
    install_command: Option<String>,
    build_command: Option<String>,
    start_command: Option<String>,
    static_dir: Option<String>,
}

fn fixtures() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/plans");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("tree").is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn settings(dir: &Path) -> Settings {
    let file: ProjectFile = match std::fs::read_to_string(dir.join("project.toml")) {
        Ok(text) => toml::from_str(&text).unwrap(),
        Err(_) => ProjectFile::default(),
    };
    let o = file.overrides;
    Settings {
        project: Overrides {
            root_dir: o.root_dir,
            install_command: o.install_command,
            build_command: o.build_command,
            start_command: o.start_command,
            static_dir: o.static_dir,
        },
        dockerfile: file.dockerfile,
        build_args: file.build_args,
        volume_paths: file.volume_paths,
    }
}

/// Compares `actual` with the file, or writes it when blessing; answers a difference.
fn check(path: &Path, actual: &str, bless: bool) -> Option<String> {
    if bless {
        std::fs::write(path, actual).unwrap();
        return None;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_default();
    (expected != actual).then(|| {
        format!(
            "{}:\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        )
    })
}

#[test]
fn golden_plans() {
    let bless = std::env::var_os("SHARD_BLESS").is_some();
    let config = shard::config::BuildConfig::default();
    let all = fixtures();
    assert!(all.len() >= 30, "only {} fixtures", all.len());
    let mut failures = Vec::new();
    for dir in &all {
        let outcome = build::plan(&dir.join("tree"), &settings(dir), &config);
        let (plan_file, docker_file, error_file) = (
            dir.join("plan.json"),
            dir.join("Dockerfile.expected"),
            dir.join("error.txt"),
        );
        match outcome {
            Ok(plan) => {
                let json = serde_json::to_string_pretty(&plan).unwrap() + "\n";
                failures.extend(check(&plan_file, &json, bless));
                failures.extend(check(&docker_file, &plan.dockerfile, bless));
                if error_file.exists() {
                    failures.push(format!(
                        "{}: planned, but an error was expected",
                        dir.display()
                    ));
                }
            }
            Err(e) => {
                failures.extend(check(&error_file, &format!("{e}\n"), bless));
                if plan_file.exists() {
                    failures.push(format!(
                        "{}: failed ({e}), but a plan was expected",
                        dir.display()
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} fixtures differ:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n\n")
    );
}

#[test]
fn planning_reads_only_named_files_and_no_links() {
    // A tree whose manifest is a link to a host file is refused, not followed.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/plans/symlinked-manifest/tree");
    let err = build::plan(
        &dir,
        &Settings::default(),
        &shard::config::BuildConfig::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("symbolic link"), "{err}");
}
