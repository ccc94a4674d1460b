//! The architecture test: reads every `crate::…` path in `src/` (use lines and paths written
//! inline, comments left out) and fails on an import between top-level modules that the allowed
//! graph below does not list, or on a loop. The graph is the design: changing it is a one-line,
//! reviewable diff here.
//!
//! Layers, lowest first: leaves that import nothing of shard (model, config, secrets, validate,
//! egress, supervisor) ← drivers (docker, git) ← db ← domain modules (cluster, hub, auth,
//! access, notifications, github, metrics, proxy, deploy, jobs) ← http (with its state) ← app.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every top-level module and the modules it may import. Nothing else is allowed.
const ALLOWED: &[(&str, &[&str])] = &[
    // The lowest layer: the shared vocabulary, and config, which parses its own values (the
    // DNS name grammar, the secret key, address pools) so it imports nothing of shard.
    ("model", &[]),
    ("config", &[]),
    // Utilities on config alone.
    ("secrets", &["config"]),
    ("validate", &["config"]),
    ("egress", &[]),
    ("checkout", &[]),
    ("supervisor", &[]),
    ("telemetry", &["config"]),
    ("setup", &["secrets"]),
    // `shard install`: files and systemctl, nothing of the server.
    ("install", &[]),
    // Drivers.
    ("docker", &["checkout", "config", "model"]),
    ("git", &["egress"]),
    // Queries.
    ("db", &["model", "secrets", "validate"]),
    // Domain modules, each only above the ones it lists.
    // The build planner: a pure function of a checkout and the `[build]` configuration.
    ("build", &["checkout", "config"]),
    ("cluster", &["config", "db", "docker", "model", "secrets"]),
    ("hub", &["config", "db", "docker", "model"]),
    ("auth", &["config", "db", "model", "secrets"]),
    ("access", &["auth", "db", "model"]),
    (
        "notifications",
        &["config", "db", "egress", "model", "secrets"],
    ),
    ("github", &["config", "db", "model", "secrets"]),
    (
        "metrics",
        &["cluster", "config", "db", "docker", "hub", "model"],
    ),
    (
        "proxy",
        &[
            "cluster",
            "config",
            "db",
            "metrics",
            "model",
            "notifications",
            "secrets",
            "validate",
        ],
    ),
    // One-click databases (volumes and file mounts live with deployments, in deploy).
    (
        "storage",
        &[
            "config",
            "db",
            "docker",
            "model",
            "notifications",
            "secrets",
            "validate",
        ],
    ),
    // What is wrong with the host (`shard doctor`, and the System page).
    ("doctor", &["config", "db", "docker", "model", "proxy"]),
    (
        "deploy",
        &[
            "build",
            "cluster",
            "config",
            "db",
            "docker",
            "egress",
            "git",
            "github",
            "hub",
            "metrics",
            "model",
            "notifications",
            "proxy",
            "secrets",
            "storage",
            "validate",
        ],
    ),
    // Pull-request previews: child projects deployed through deploy, reported on GitHub.
    (
        "previews",
        &[
            "cluster", "config", "db", "deploy", "github", "model", "secrets",
        ],
    ),
    // One-off commands and scheduled jobs, beside the live deployment.
    (
        "tasks",
        &[
            "cluster",
            "config",
            "db",
            "deploy",
            "docker",
            "hub",
            "model",
            "notifications",
        ],
    ),
    (
        "jobs",
        &[
            "config",
            "db",
            "deploy",
            "hub",
            "model",
            "notifications",
            "secrets",
            "supervisor",
        ],
    ),
    // The HTTP layer: AppState is the handle set its handlers take (it holds the engine handle
    // that app.rs hands to domain modules). Routes reach Docker only through a domain module,
    // so http does not list docker.
    (
        "state",
        &[
            "auth",
            "cluster",
            "config",
            "db",
            "deploy",
            "docker",
            "doctor",
            "github",
            "hub",
            "jobs",
            "metrics",
            "notifications",
            "previews",
            "proxy",
            "secrets",
            "storage",
            "supervisor",
            "tasks",
        ],
    ),
    (
        "http",
        &[
            "access",
            "auth",
            "build",
            "cluster",
            "config",
            "db",
            "deploy",
            "doctor",
            "egress",
            "github",
            "hub",
            "jobs",
            "metrics",
            "model",
            "notifications",
            "previews",
            "proxy",
            "secrets",
            "setup",
            "state",
            "storage",
            "supervisor",
            "tasks",
            "validate",
        ],
    ),
    // Wiring: app builds every part and starts every loop.
    (
        "app",
        &[
            "auth",
            "cluster",
            "config",
            "db",
            "deploy",
            "docker",
            "doctor",
            "github",
            "http",
            "hub",
            "jobs",
            "metrics",
            "model",
            "notifications",
            "previews",
            "proxy",
            "secrets",
            "setup",
            "state",
            "storage",
            "supervisor",
            "tasks",
            "telemetry",
        ],
    ),
    // The command line: the client speaks HTTP to a server and shares no server code.
    ("cli", &["config"]),
    ("client", &["cli"]),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`src/deploy/log.rs` → `deploy`), or `None` for the
/// crate roots.
fn module_of(file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src()).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_string())
}

/// The code of a file with its comments removed (line and block comments; string contents
/// are kept, which is harmless here since no string spells `crate::`).
fn without_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let bytes = text.as_bytes();
    let (mut i, mut in_str) = (0, false);
    while i < bytes.len() {
        let rest = &text[i..];
        if in_str {
            if rest.starts_with("\\\"") || rest.starts_with("\\\\") {
                out.push_str(&rest[..2]);
                i += 2;
                continue;
            }
            if rest.starts_with('"') {
                in_str = false;
            }
        } else if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
            continue;
        } else if rest.starts_with("/*") {
            i += rest.find("*/").map_or(rest.len(), |e| e + 2);
            continue;
        } else if rest.starts_with('"') {
            in_str = true;
        } else if rest.starts_with("'\"'") {
            out.push_str("'\"'");
            i += 3;
            continue;
        }
        let ch = rest.chars().next().expect("not at the end");
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// The top-level modules a piece of code names through `crate::`: `crate::a::…` and every
/// first segment inside `crate::{a, b::c}`.
fn imports(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `$crate::` or part of a longer name
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item = String::new();
            for ch in group.chars() {
                match ch {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.extend(first_segment(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(ch);
            }
            found.extend(first_segment(&item));
        } else {
            found.extend(first_segment(rest));
        }
    }
    found.remove("self");
    found
}

fn first_segment(text: &str) -> Option<String> {
    let name: String = text
        .trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// Every import between two different top-level modules, with the files that make it.
fn graph() -> BTreeMap<(String, String), BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut edges: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let Some(from) = module_of(&file) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).expect("a source file is readable");
        for to in imports(&without_comments(&text)) {
            if to != from {
                let shown = file
                    .strip_prefix(src())
                    .unwrap_or(&file)
                    .display()
                    .to_string();
                edges.entry((from.clone(), to)).or_default().insert(shown);
            }
        }
    }
    edges
}

fn allowed() -> BTreeMap<&'static str, BTreeSet<&'static str>> {
    ALLOWED
        .iter()
        .map(|(m, to)| (*m, to.iter().copied().collect()))
        .collect()
}

/// A loop in a directed graph, if there is one, as the path that closes it.
fn find_loop<'a>(graph: &BTreeMap<&'a str, BTreeSet<&'a str>>) -> Option<Vec<&'a str>> {
    fn visit<'a>(
        node: &'a str,
        graph: &BTreeMap<&'a str, BTreeSet<&'a str>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<&'a str>> {
        if let Some(start) = path.iter().position(|n| *n == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node);
            return Some(cycle);
        }
        if !done.insert(node) {
            return None;
        }
        path.push(node);
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_allowed_graph_has_no_loop() {
    let allowed = allowed();
    assert_eq!(allowed.len(), ALLOWED.len(), "a module is listed twice");
    assert_eq!(find_loop(&allowed), None, "the allowed graph itself loops");
    for (module, to) in &allowed {
        for target in to {
            assert!(
                allowed.contains_key(target),
                "{module} may import {target}, which is not a module in the graph"
            );
        }
    }
}

#[test]
fn every_module_imports_only_what_the_design_allows() {
    let allowed = allowed();
    let mut wrong = Vec::new();
    let mut modules = BTreeSet::new();
    for ((from, to), files) in graph() {
        modules.insert(from.clone());
        modules.insert(to.clone());
        let listed = allowed.get(from.as_str());
        if listed.is_none_or(|l| !l.contains(to.as_str())) {
            let files: Vec<_> = files.into_iter().collect();
            wrong.push(format!("{from} → {to} ({})", files.join(", ")));
        }
    }
    let unknown: Vec<_> = modules
        .iter()
        .filter(|m| !allowed.contains_key(m.as_str()))
        .collect();
    assert!(
        wrong.is_empty() && unknown.is_empty(),
        "imports the design does not allow:\n  {}\nmodules missing from the allowed graph: {unknown:?}",
        wrong.join("\n  ")
    );
}

#[test]
fn the_import_reader_sees_grouped_inline_and_commented_paths_right() {
    let code = without_comments(
        "use crate::{a::B, c, d::{e, f}};\n// crate::commented\nlet x = crate::g::h(); /* crate::block */\nlet s = \"//\"; crate::i::j;",
    );
    let found: Vec<_> = imports(&code).into_iter().collect();
    assert_eq!(found, ["a", "c", "d", "g", "i"]);
}

/// Files stay small enough to read whole: none in `src/` is over 600 lines.
#[test]
fn no_source_file_is_over_600_lines() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let lines = std::fs::read_to_string(f).ok()?.lines().count();
            (lines > 600).then(|| format!("{} ({lines} lines)", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "files over 600 lines: {long:?}");
}

/// The runtime seam takes plain inputs: no method of `trait Runtime` takes the pipeline or the
/// deployer (a runtime calls nothing above it).
#[test]
fn the_runtime_seam_takes_no_pipeline_or_deployer() {
    let text = std::fs::read_to_string(src().join("deploy/runtime.rs")).expect("runtime.rs");
    let code = without_comments(&text);
    let start = code
        .find("pub trait Runtime")
        .expect("deploy/runtime.rs defines trait Runtime");
    let end = start + code[start..].find("\n}\n").expect("the trait ends");
    let block = &code[start..end];
    for word in ["Pipeline", "Deployer"] {
        assert!(
            !block.contains(word),
            "trait Runtime mentions {word}:\n{block}"
        );
    }
}
