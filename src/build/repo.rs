//! What the people who own the repository said: the project's overrides, `shard.toml` at the
//! repository root (the same keys), and a `Procfile`'s `web:` line. Settings win over
//! `shard.toml`, which wins over detection; each value keeps where it came from.

use serde::Deserialize;

use super::{PlanError, Tree};

/// The file in a repository's root that may set the overrides.
pub const REPO_FILE: &str = "shard.toml";

/// The overrides a project (or `shard.toml`) may set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    pub root_dir: Option<String>,
    pub install_command: Option<String>,
    pub build_command: Option<String>,
    pub start_command: Option<String>,
    pub static_dir: Option<String>,
}

/// One override and where it came from.
#[derive(Debug, Clone, Default)]
pub struct Given {
    pub value: Option<String>,
    pub source: String,
}

/// The overrides in force.
#[derive(Debug, Clone, Default)]
pub struct Effective {
    pub root_dir: Given,
    pub install: Given,
    pub build: Given,
    pub start: Given,
    pub static_dir: Given,
}

/// A `Procfile`'s web process.
#[derive(Debug, Clone)]
pub struct Procfile {
    pub web: String,
    pub source: String,
}

/// Checks an override's value: commands are one line of at most 4 KiB, directories are
/// relative paths inside the repository.
pub fn check(key: &str, value: &str) -> Result<(), String> {
    let directory = matches!(key, "root_dir" | "static_dir");
    if value.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if value.chars().any(|c| c.is_control()) {
        return Err("must be one line without control characters".into());
    }
    if directory {
        if value.len() > 255 {
            return Err("must be at most 255 characters".into());
        }
        if value.starts_with('/') || value.split('/').any(|part| part == "..") {
            return Err("must be a path inside the repository, e.g. apps/web or dist".into());
        }
    } else if value.len() > 4096 {
        return Err("must be at most 4096 characters".into());
    }
    Ok(())
}

/// `./dist/` → `dist`; `.` stays.
fn normalize(dir: &str) -> String {
    let parts: Vec<&str> = dir
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    }
}

/// The overrides of `project` merged over the repository's `shard.toml`.
pub fn effective(tree: &Tree, project: &Overrides) -> Result<Effective, PlanError> {
    let file: Overrides = match tree.read(REPO_FILE)? {
        Some(text) => toml::from_str(&text).map_err(|e| PlanError::Invalid {
            file: REPO_FILE.into(),
            message: e.message().to_string(),
        })?,
        None => Overrides::default(),
    };
    let pick = |key: &str, mine: &Option<String>, theirs: &Option<String>| {
        let (value, source) = match (mine, theirs) {
            (Some(v), _) => (v, "project settings".to_string()),
            (None, Some(v)) => (v, REPO_FILE.to_string()),
            (None, None) => return Ok(Given::default()),
        };
        check(key, value).map_err(|message| PlanError::Invalid {
            file: format!("{key} ({source})"),
            message,
        })?;
        let value = if matches!(key, "root_dir" | "static_dir") {
            normalize(value)
        } else {
            value.trim().to_string()
        };
        Ok(Given {
            value: Some(value),
            source,
        })
    };
    let root_dir = pick("root_dir", &project.root_dir, &file.root_dir)?;
    Ok(Effective {
        root_dir: Given {
            value: root_dir.value.filter(|dir| dir != "."),
            ..root_dir
        },
        install: pick(
            "install_command",
            &project.install_command,
            &file.install_command,
        )?,
        build: pick("build_command", &project.build_command, &file.build_command)?,
        start: pick("start_command", &project.start_command, &file.start_command)?,
        static_dir: pick("static_dir", &project.static_dir, &file.static_dir)?,
    })
}

/// The `web:` process of the app's `Procfile`, if it has one (a Procfile of other processes
/// only says nothing about serving HTTP, so detection decides).
pub fn procfile(tree: &Tree) -> Result<Option<Procfile>, PlanError> {
    let Some(text) = tree.read("Procfile")? else {
        return Ok(None);
    };
    for (n, line) in text.lines().enumerate() {
        if let Some(command) = line.trim().strip_prefix("web:") {
            let command = command.trim();
            if command.is_empty() {
                return Err(PlanError::Invalid {
                    file: format!("Procfile:{}", n + 1),
                    message: "the web process has no command".into(),
                });
            }
            return Ok(Some(Procfile {
                web: command.to_string(),
                source: format!("Procfile:{}", n + 1),
            }));
        }
    }
    Ok(None)
}
