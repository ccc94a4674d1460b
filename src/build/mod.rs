//! Builds without a Dockerfile: the build planner.
//!
//! `plan(repository, settings, config)` turns a checkout into a [`Plan`] with a pure function:
//! it reads a handful of named files of the tree (never through a symbolic link, never more
//! than 1 MiB each) and nothing else — no network, no Docker, no clock. The plan names every
//! decision with its evidence (which file, which key or line) and renders the one Dockerfile
//! the pipeline then builds like any other, so caching, limits, logs and the switch are
//! shared. Base images are configuration (`[build.images]`, `[build.versions]`).
//!
//! # Rules, in order
//! 1. **A Dockerfile wins.** When the app's root holds the project's `dockerfile` (default
//!    `Dockerfile`), it is built as it is; the plan says so and repeats it.
//! 2. **Settings over the file over detection.** `root_dir`, `install_command`,
//!    `build_command`, `start_command` and `static_dir` come from the project's settings, else
//!    from `shard.toml` at the repository root, else from detection; each says which.
//! 3. **One ecosystem.** The first that matches, in this order, plans the app: Go (`go.mod`),
//!    Rust (`Cargo.toml`), Java (`pom.xml`, `build.gradle[.kts]`), Ruby (`Gemfile`), PHP
//!    (`composer.json`), Python (`requirements.txt`, `pyproject.toml`), Node (`package.json`),
//!    then a `Procfile` or a `start_command` alone, then a static site (`index.html`). A backend
//!    manifest beats `package.json` because backends keep one for their assets; the plan lists
//!    what else it saw.
//! 4. **A `Procfile`'s `web:` line** is the start command unless settings or `shard.toml` give
//!    one.
//! 5. **Versions** are pinned by the files people keep (`.nvmrc`, `.node-version`,
//!    `.tool-versions`, `engines.node`, `.python-version`, `requires-python`, `go.mod`,
//!    `rust-toolchain[.toml]`, `.ruby-version`, `composer.json`'s `require.php`) and met by
//!    `[build.versions]` (see `version`); one that cannot be met fails the plan.
//! 6. **Static output goes to static hosting**: Vite, Create React App, Astro (static),
//!    SvelteKit with `adapter-static`, Next with `output: 'export'`, a plain `index.html`, or
//!    any app given `static_dir`. The build runs in a builder stage and the site is the final
//!    stage's `/site`, which the pipeline copies out and the proxy serves.
//! 7. **Nothing recognized** fails with what was looked for and the two ways out: add a
//!    Dockerfile, or set `start_command`.

mod dockerfile;
mod node;
mod python;
mod repo;
mod scripting;
mod systems;
mod tree;
pub mod version;

use std::path::Path;

use serde::Serialize;

use dockerfile::{Output, Recipe, Start};
pub use dockerfile::{SITE_DIR, plain_path};
pub use repo::{Overrides, REPO_FILE, check as check_override};
pub use tree::Tree;
pub use version::Version;

use crate::config::BuildConfig;

/// One decision of the plan and what it rests on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Decision {
    pub what: String,
    /// The file (with its key or line), `project settings`, `shard.toml`, or the rule applied.
    pub source: String,
}

/// What shard will build, and why.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Plan {
    /// `node`, `python`, `go`, `rust`, `ruby`, `php`, `java`, `static`, `shell`, or
    /// `dockerfile` when the repository's own Dockerfile is built.
    pub language: String,
    pub framework: Option<String>,
    pub package_manager: Option<String>,
    pub versions: Vec<Version>,
    pub install: Option<String>,
    pub build: Option<String>,
    pub start: Option<String>,
    /// The port the app listens on (`PORT` is set to it); none for a static site.
    pub port: Option<u16>,
    /// For a static site: the directory of the build (relative to `root_dir`) that is served.
    pub static_dir: Option<String>,
    /// The directory of the repository the app lives in (`.` for the root).
    pub root_dir: String,
    pub decisions: Vec<Decision>,
    /// The Dockerfile shard builds (the repository's own, or the generated one).
    pub dockerfile: String,
}

impl Plan {
    /// True when the build's output is a site shard serves (the image's `/site`).
    pub fn is_static(&self) -> bool {
        self.static_dir.is_some() && self.language != "dockerfile"
    }

    /// The plan as build-log lines: the headline, the decisions, the Dockerfile.
    pub fn log_lines(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "==> Plan: {}{}{} in {}",
            self.language,
            self.framework
                .as_ref()
                .map(|f| format!(" / {f}"))
                .unwrap_or_default(),
            self.package_manager
                .as_ref()
                .map(|p| format!(" ({p})"))
                .unwrap_or_default(),
            self.root_dir
        )];
        for v in &self.versions {
            lines.push(format!("    {} {} ← {}", v.tool, v.version, v.source));
        }
        for d in &self.decisions {
            lines.push(format!("    {} ← {}", d.what, d.source));
        }
        lines.push("==> Dockerfile".into());
        lines.extend(self.dockerfile.lines().map(|l| format!("    {l}")));
        lines
    }
}

/// What the planner is given besides the tree.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The project's overrides (they win over `shard.toml`).
    pub project: Overrides,
    /// The project's Dockerfile path (relative to the app's root); empty means `Dockerfile`.
    pub dockerfile: String,
    /// Names of the variables passed to the build (declared `ARG` before the install).
    pub build_args: Vec<String>,
    /// Where the project's volumes are mounted: the app's image has these directories, owned
    /// by the app's user, so a new volume starts out writable by the app (Docker gives an empty
    /// volume the owner of the directory it is first mounted over).
    pub volume_paths: Vec<String>,
}

/// Why a tree could not be planned; every message says what to do.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PlanError {
    #[error(
        "nothing in {root} says how to build it: shard looked for a Dockerfile, package.json, \
         requirements.txt, pyproject.toml, go.mod, Cargo.toml, Gemfile, composer.json, pom.xml, \
         build.gradle, a Procfile and index.html. Add a Dockerfile, or set start_command (in the \
         project's settings or in shard.toml)"
    )]
    Unrecognized { root: String },
    /// The ecosystem is known but something the build needs is missing.
    #[error("{0}")]
    Incomplete(String),
    #[error("{0}")]
    Version(version::Unmet),
    /// A setting or a manifest that cannot be used.
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
    #[error("{0}")]
    Read(String),
}

/// What an ecosystem's detector found.
pub(crate) struct Detected {
    pub language: &'static str,
    pub framework: Option<String>,
    pub package_manager: Option<String>,
    pub versions: Vec<Version>,
    pub decisions: Vec<Decision>,
    pub recipe: Recipe,
}

pub(crate) fn decision(what: impl Into<String>, source: impl Into<String>) -> Decision {
    Decision {
        what: what.into(),
        source: source.into(),
    }
}

/// The image of `template` for `version`.
pub(crate) fn image(template: &str, version: &str) -> String {
    template.replace("{version}", version)
}

/// Plans the checkout at `repository`.
pub fn plan(
    repository: &Path,
    settings: &Settings,
    config: &BuildConfig,
) -> Result<Plan, PlanError> {
    let whole = Tree::new(repository);
    let overrides = repo::effective(&whole, &settings.project)?;
    let root_dir = overrides
        .root_dir
        .value
        .clone()
        .unwrap_or_else(|| ".".into());
    if root_dir != "." && !whole.is_dir(&root_dir) {
        return Err(PlanError::Invalid {
            file: format!("root_dir ({})", overrides.root_dir.source),
            message: format!("'{root_dir}' is not a directory of the repository"),
        });
    }
    let tree = Tree::new(&repository.join(&root_dir));
    let mut decisions = Vec::new();
    if let Some(source) = &overrides
        .root_dir
        .value
        .as_ref()
        .map(|_| &overrides.root_dir.source)
    {
        decisions.push(decision(
            format!("the app lives in {root_dir}/"),
            source.as_str(),
        ));
    }
    let dockerfile_path = match settings.dockerfile.as_str() {
        "" => "Dockerfile",
        path => path,
    };
    if let Some(text) = tree.read(dockerfile_path)? {
        return Ok(own_dockerfile(
            text,
            dockerfile_path,
            root_dir,
            decisions,
            &overrides,
        ));
    }
    let procfile = repo::procfile(&tree)?;
    let detected = systems::detect(&tree, config, &overrides, procfile.as_ref())?;
    let Some(mut detected) = detected else {
        return bare(
            &tree, config, settings, &overrides, procfile, root_dir, decisions,
        );
    };
    decisions.append(&mut detected.decisions);
    let shell = config.images.debian.as_str();
    apply(
        &mut detected.recipe,
        &overrides,
        procfile.as_ref(),
        shell,
        &mut decisions,
    )?;
    Ok(finish(detected, root_dir, decisions, settings))
}

/// Applies the overrides (settings, then `shard.toml`) and the Procfile to a detected recipe.
fn apply(
    recipe: &mut Recipe,
    o: &repo::Effective,
    procfile: Option<&repo::Procfile>,
    shell_image: &str,
    decisions: &mut Vec<Decision>,
) -> Result<(), PlanError> {
    if let Some(install) = &o.install.value {
        recipe.install = Some(install.clone());
        decisions.push(decision("install command", o.install.source.as_str()));
    }
    if let Some(build) = &o.build.value {
        recipe.build = Some(build.clone());
        decisions.push(decision("build command", o.build.source.as_str()));
    }
    let start = match (&o.start.value, procfile) {
        (Some(start), _) => Some((start.clone(), o.start.source.clone())),
        (None, Some(p)) => Some((p.web.clone(), p.source.clone())),
        (None, None) => None,
    };
    if o.start.value.is_some() && o.static_dir.value.is_some() {
        return Err(PlanError::Invalid {
            file: format!("{} and {}", o.start.source, o.static_dir.source),
            message: "set either start_command (a server) or static_dir (a site), not both".into(),
        });
    }
    if let Some(dir) = &o.static_dir.value {
        recipe.output = Output::Static(dir.clone());
        decisions.push(decision(
            format!("the site is {dir}/ of the build"),
            o.static_dir.source.as_str(),
        ));
        return Ok(());
    }
    if let Some((line, source)) = start {
        decisions.push(decision("start command", source));
        recipe.output = match std::mem::replace(&mut recipe.output, Output::Static(String::new())) {
            Output::InPlace(_) | Output::Static(_) => Output::InPlace(Start::Shell(line)),
            Output::Runtime {
                image,
                collect,
                copies,
                start: Start::Exec(_),
            } if image == "scratch" => Output::Runtime {
                // A shell command needs a shell: the compiled app moves to the Debian image.
                image: shell_image.to_string(),
                collect,
                copies,
                start: Start::Shell(line),
            },
            Output::Runtime {
                image,
                collect,
                copies,
                ..
            } => Output::Runtime {
                image,
                collect,
                copies,
                start: Start::Shell(line),
            },
        };
    }
    Ok(())
}

fn finish(
    d: Detected,
    root_dir: String,
    mut decisions: Vec<Decision>,
    settings: &Settings,
) -> Plan {
    let r = &d.recipe;
    let volume_paths: Vec<String> = match r.output {
        Output::Static(_) => Vec::new(),
        _ => settings
            .volume_paths
            .iter()
            .filter(|p| dockerfile::plain_path(p))
            .cloned()
            .collect(),
    };
    for path in &volume_paths {
        decisions.push(decision(
            format!("{path} is in the image, owned by the app's user (a volume is mounted there)"),
            "project volumes",
        ));
    }
    let title = match &d.framework {
        Some(f) => format!("{} / {f}", d.language),
        None => d.language.to_string(),
    };
    let (start, port, static_dir) = match &r.output {
        Output::InPlace(start) | Output::Runtime { start, .. } => {
            (Some(start.text()), Some(r.port), None)
        }
        Output::Static(dir) => (None, None, Some(dir.clone())),
    };
    Plan {
        language: d.language.into(),
        framework: d.framework.clone(),
        package_manager: d.package_manager.clone(),
        versions: d.versions.clone(),
        install: r.install.clone(),
        build: r.build.clone(),
        start,
        port,
        static_dir,
        root_dir,
        decisions,
        dockerfile: dockerfile::render(r, &title, &settings.build_args, &volume_paths),
    }
}

/// The repository's own Dockerfile, built as it is.
fn own_dockerfile(
    text: String,
    path: &str,
    root_dir: String,
    mut decisions: Vec<Decision>,
    o: &repo::Effective,
) -> Plan {
    decisions.push(decision(
        format!("build {path} as it is"),
        format!("{path} exists; a repository's own Dockerfile wins over detection"),
    ));
    for (name, given) in [
        ("install_command", &o.install),
        ("build_command", &o.build),
        ("start_command", &o.start),
        ("static_dir", &o.static_dir),
    ] {
        if given.value.is_some() {
            decisions.push(decision(
                format!("{name} is not used: the Dockerfile says how to build"),
                given.source.as_str(),
            ));
        }
    }
    Plan {
        language: "dockerfile".into(),
        framework: None,
        package_manager: None,
        versions: Vec::new(),
        install: None,
        build: None,
        start: None,
        port: None,
        static_dir: None,
        root_dir,
        decisions,
        dockerfile: text,
    }
}

/// No ecosystem matched: a start command alone, a static directory, or nothing to build.
fn bare(
    tree: &Tree,
    config: &BuildConfig,
    settings: &Settings,
    o: &repo::Effective,
    procfile: Option<repo::Procfile>,
    root_dir: String,
    mut decisions: Vec<Decision>,
) -> Result<Plan, PlanError> {
    let start = match (&o.start.value, &procfile) {
        (Some(start), _) => Some((start.clone(), o.start.source.clone())),
        (None, Some(p)) => Some((p.web.clone(), p.source.clone())),
        (None, None) => None,
    };
    let site = match (&o.static_dir.value, start.is_some()) {
        (Some(dir), _) => Some((dir.clone(), o.static_dir.source.clone())),
        (None, false) if tree.is_file("index.html")? => {
            Some((".".to_string(), "index.html".to_string()))
        }
        _ => None,
    };
    if let (Some((dir, source)), None) = (&site, &o.build.value) {
        decisions.push(decision(format!("serve {dir}/ as it is"), source.as_str()));
        return Ok(Plan {
            language: "static".into(),
            framework: None,
            package_manager: None,
            versions: Vec::new(),
            install: None,
            build: None,
            start: None,
            port: None,
            static_dir: Some(dir.clone()),
            root_dir,
            decisions,
            dockerfile: dockerfile::render_files(dir, "a static site"),
        });
    }
    let image = config.images.debian.clone();
    let recipe = Recipe {
        image,
        root_setup: Vec::new(),
        env: Vec::new(),
        manifests: Vec::new(),
        install: None,
        install_after_source: true,
        build: None,
        run_env: Vec::new(),
        port: 8080,
        output: match (&site, &start) {
            (Some((dir, _)), _) => Output::Static(dir.clone()),
            (None, Some((line, _))) => Output::InPlace(Start::Shell(line.clone())),
            (None, None) => {
                return Err(PlanError::Unrecognized {
                    root: if root_dir == "." {
                        "the repository".into()
                    } else {
                        format!("{root_dir}/")
                    },
                });
            }
        },
    };
    let detected = Detected {
        language: "shell",
        framework: None,
        package_manager: None,
        versions: Vec::new(),
        decisions: Vec::new(),
        recipe,
    };
    let mut detected = detected;
    let shell = config.images.debian.as_str();
    apply(
        &mut detected.recipe,
        o,
        procfile.as_ref(),
        shell,
        &mut decisions,
    )?;
    Ok(finish(detected, root_dir, decisions, settings))
}
