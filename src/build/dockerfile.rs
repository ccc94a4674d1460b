//! Renders a recipe as the one Dockerfile shard builds (and `shard plan --dockerfile` prints).
//!
//! Layers are ordered for the cache: the manifests and lockfiles, then the install, then the
//! source, then the build, so a change to the code alone reuses the installed dependencies.
//! Everything after the base image's own setup runs as user 10001 (a numeric id, so no
//! `useradd` is needed in the image), and the app runs as that user. There is no `# syntax=`
//! line (it would pull a frontend image), no `RUN --mount` (the classic builder lacks it) and
//! no shell string built from anything but the plan's own commands.

/// The user builds and apps run as.
pub const USER: &str = "10001:10001";
/// The build user's home: caches of npm, pip, go and cargo go there.
pub const HOME: &str = "/home/shard";

/// How the app starts.
#[derive(Debug, Clone)]
pub enum Start {
    /// A command line for `/bin/sh -c` (may use `$PORT`).
    Shell(String),
    /// A program and its arguments, run directly (the image may have no shell).
    Exec(Vec<String>),
}

impl Start {
    pub fn text(&self) -> String {
        match self {
            Start::Shell(line) => line.clone(),
            Start::Exec(argv) => argv.join(" "),
        }
    }
}

/// What the build leaves behind.
#[derive(Debug, Clone)]
pub enum Output {
    /// The build stage is the app's image; it runs `start`.
    InPlace(Start),
    /// A directory of the build (relative to the app's root) is the site shard serves.
    Static(String),
    /// Files of the build stage are copied into a smaller runtime image that runs `start`.
    Runtime {
        image: String,
        /// Run in the build stage after the build (gathers the artifact).
        collect: Option<String>,
        /// (path in the build stage, path in the runtime image).
        copies: Vec<(String, String)>,
        start: Start,
    },
}

/// Everything the Dockerfile is made of.
#[derive(Debug, Clone)]
pub struct Recipe {
    pub image: String,
    /// Dockerfile lines run as root before the build user takes over (tool copies, OS
    /// packages an ecosystem always needs).
    pub root_setup: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Files copied before the install (those that exist).
    pub manifests: Vec<String>,
    pub install: Option<String>,
    /// The install needs the whole source (no manifest alone describes the dependencies).
    pub install_after_source: bool,
    pub build: Option<String>,
    /// Environment of the running app (set after the build).
    pub run_env: Vec<(String, String)>,
    pub port: u16,
    pub output: Output,
}

/// `"a", "b"` as a JSON array (Dockerfile exec form).
fn json(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

/// `exec` a lone command so it is PID 1 and gets signals; a compound one runs as written.
fn shell_cmd(line: &str) -> String {
    let compound = ["&&", "||", ";", "|", "\n", "&"]
        .iter()
        .any(|op| line.contains(op));
    let line = if compound || line.starts_with("exec ") {
        line.to_string()
    } else {
        format!("exec {line}")
    };
    json(&["/bin/sh".into(), "-c".into(), line])
}

fn start_lines(out: &mut String, start: &Start) {
    match start {
        Start::Shell(line) => out.push_str(&format!("CMD {}\n", shell_cmd(line))),
        Start::Exec(argv) => out.push_str(&format!("CMD {}\n", json(argv))),
    }
}

fn env_line(out: &mut String, env: &[(String, String)]) {
    if env.is_empty() {
        return;
    }
    let pairs: Vec<String> = env
        .iter()
        .map(|(k, v)| {
            if v.chars().any(|c| c.is_whitespace() || c == '"') {
                format!("{k}={}", serde_json::to_string(v).unwrap_or_default())
            } else {
                format!("{k}={v}")
            }
        })
        .collect();
    out.push_str(&format!("ENV {}\n", pairs.join(" ")));
}

/// A RUN line for a shell command (multi-line commands joined).
fn run(out: &mut String, command: &str) {
    let command = command.trim().replace('\n', " \\\n    ");
    out.push_str(&format!("RUN {command}\n"));
}

/// Whether `path` can be written in a Dockerfile as it is: absolute, plain characters only.
pub fn plain_path(path: &str) -> bool {
    path.starts_with('/')
        && path.len() > 1
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'-'))
        && !path.split('/').any(|part| part == "..")
}

/// An empty directory of the build stage, copied to where a runtime image needs a directory
/// of its own (a `FROM scratch` image has no `mkdir`).
const EMPTY_DIR: &str = "/home/shard/.empty";

/// The Dockerfile of `recipe`; `title` heads it, `build_args` are declared before the install,
/// `volume_paths` are directories the app's image has, owned by its user.
pub fn render(
    recipe: &Recipe,
    title: &str,
    build_args: &[String],
    volume_paths: &[String],
) -> String {
    let mut out = format!(
        "# Generated by shard: {title}.\n# Commit it as your Dockerfile to build it yourself (`shard plan --dockerfile`).\n"
    );
    let staged = !matches!(recipe.output, Output::InPlace(_));
    out.push_str(&format!(
        "FROM {}{}\n",
        recipe.image,
        if staged { " AS build" } else { "" }
    ));
    for line in &recipe.root_setup {
        out.push_str(line);
        out.push('\n');
    }
    let mut dirs = format!("/app {HOME}");
    if matches!(recipe.output, Output::InPlace(_)) {
        for path in volume_paths {
            dirs.push(' ');
            dirs.push_str(path);
        }
    }
    out.push_str(&format!("RUN mkdir -p {dirs} && chown {USER} {dirs}\n"));
    out.push_str(&format!("USER {USER}\n"));
    let mut env = vec![("HOME".to_string(), HOME.to_string())];
    env.extend(recipe.env.iter().cloned());
    env_line(&mut out, &env);
    out.push_str("WORKDIR /app\n");
    for arg in build_args {
        out.push_str(&format!("ARG {arg}\n"));
    }
    if !recipe.install_after_source && !recipe.manifests.is_empty() {
        out.push_str(&format!(
            "COPY --chown={USER} {} ./\n",
            recipe.manifests.join(" ")
        ));
    }
    if let (Some(install), false) = (&recipe.install, recipe.install_after_source) {
        run(&mut out, install);
    }
    out.push_str(&format!("COPY --chown={USER} . .\n"));
    if let (Some(install), true) = (&recipe.install, recipe.install_after_source) {
        run(&mut out, install);
    }
    if let Some(build) = &recipe.build {
        run(&mut out, build);
    }
    match &recipe.output {
        Output::InPlace(start) => {
            let mut run_env = recipe.run_env.clone();
            run_env.push(("PORT".into(), recipe.port.to_string()));
            env_line(&mut out, &run_env);
            out.push_str(&format!("EXPOSE {}\n", recipe.port));
            start_lines(&mut out, start);
        }
        Output::Static(dir) => {
            let from = if dir == "." {
                "/app".to_string()
            } else {
                format!("/app/{}", dir.trim_matches('/'))
            };
            out.push_str("\n# The site: shard serves these files itself; no container runs.\n");
            out.push_str("FROM scratch\n");
            out.push_str(&format!("COPY --from=build {from} {SITE_DIR}\n"));
        }
        Output::Runtime {
            image,
            collect,
            copies,
            start,
        } => {
            if let Some(collect) = collect {
                run(&mut out, collect);
            }
            if !volume_paths.is_empty() {
                out.push_str(&format!("RUN mkdir -p {EMPTY_DIR}\n"));
            }
            out.push_str(&format!("\nFROM {image}\n"));
            for (from, to) in copies {
                out.push_str(&format!("COPY --from=build --chown={USER} {from} {to}\n"));
            }
            for path in volume_paths {
                out.push_str(&format!(
                    "COPY --from=build --chown={USER} {EMPTY_DIR} {path}\n"
                ));
            }
            out.push_str(&format!("USER {USER}\n"));
            out.push_str("WORKDIR /app\n");
            let mut run_env = vec![("HOME".to_string(), "/app".to_string())];
            run_env.extend(recipe.run_env.iter().cloned());
            run_env.push(("PORT".into(), recipe.port.to_string()));
            env_line(&mut out, &run_env);
            out.push_str(&format!("EXPOSE {}\n", recipe.port));
            start_lines(&mut out, start);
        }
    }
    out
}

/// Where a static plan's image holds the site (the pipeline copies it out from there).
pub const SITE_DIR: &str = "/site";

/// The Dockerfile of a site that needs no build: the files as they are.
pub fn render_files(dir: &str, title: &str) -> String {
    let from = if dir == "." { "." } else { dir };
    format!(
        "# Generated by shard: {title}.\n# Commit it as your Dockerfile to build it yourself (`shard plan --dockerfile`).\n# The site: shard serves these files itself; no container runs.\nFROM scratch\nCOPY {from} {SITE_DIR}\n"
    )
}
