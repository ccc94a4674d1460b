//! Node apps: npm, pnpm, yarn and bun (the `packageManager` field, else the lockfile); Next.js,
//! Nuxt, Remix, Astro, SvelteKit, Vite, Create React App, Express and plain `start` scripts.
//! Frameworks that build a static site go to static hosting.

use serde_json::Value;

use super::dockerfile::{Output, Recipe, Start};
use super::systems::{Input, first_pin, tool_versions, version_file};
use super::version::Pin;
use super::{Decision, Detected, PlanError, decision, image};

/// Lockfiles and the manager each means, in the order a conflict is settled.
const LOCKFILES: &[(&str, &str)] = &[
    ("bun.lockb", "bun"),
    ("bun.lock", "bun"),
    ("pnpm-lock.yaml", "pnpm"),
    ("yarn.lock", "yarn"),
    ("package-lock.json", "npm"),
    ("npm-shrinkwrap.json", "npm"),
];

struct Manager {
    name: &'static str,
    lockfile: Option<&'static str>,
}

impl Manager {
    fn install(&self, berry: bool) -> String {
        match (self.name, self.lockfile.is_some()) {
            ("npm", true) => "npm ci".into(),
            ("npm", false) => "npm install".into(),
            ("pnpm", true) => "corepack pnpm install --frozen-lockfile".into(),
            ("pnpm", false) => "corepack pnpm install".into(),
            ("yarn", true) if berry => "corepack yarn install --immutable".into(),
            ("yarn", true) => "corepack yarn install --frozen-lockfile".into(),
            ("yarn", false) => "corepack yarn install".into(),
            (_, true) => "bun install --frozen-lockfile".into(),
            (_, false) => "bun install".into(),
        }
    }

    fn run(&self, script: &str) -> String {
        match self.name {
            "npm" => format!("npm run {script}"),
            "bun" => format!("bun run {script}"),
            other => format!("corepack {other} run {script}"),
        }
    }
}

fn manager(
    input: &Input,
    pkg: &Value,
    decisions: &mut Vec<Decision>,
) -> Result<Manager, PlanError> {
    let mut locks = Vec::new();
    for (file, name) in LOCKFILES {
        if input.tree.is_file(file)? {
            locks.push((*file, *name));
        }
    }
    let declared = pkg
        .get("packageManager")
        .and_then(Value::as_str)
        .and_then(|v| v.split('@').next())
        .and_then(|name| {
            ["npm", "pnpm", "yarn", "bun"]
                .into_iter()
                .find(|n| *n == name)
        });
    if let Some(name) = declared {
        let lockfile = locks.iter().find(|(_, n)| *n == name).map(|(f, _)| *f);
        decisions.push(decision(name, "package.json (packageManager)"));
        for (file, other) in locks.iter().filter(|(_, n)| *n != name) {
            decisions.push(decision(
                format!("{file} ({other}) is not used"),
                "packageManager in package.json wins over lockfiles",
            ));
        }
        return Ok(Manager { name, lockfile });
    }
    let Some(&(file, name)) = locks.first() else {
        decisions.push(decision("npm (no lockfile: `npm install`)", "package.json"));
        return Ok(Manager {
            name: "npm",
            lockfile: None,
        });
    };
    decisions.push(decision(name, file));
    for (other_file, other) in locks.iter().skip(1).filter(|(_, n)| *n != name) {
        decisions.push(decision(
            format!("{other_file} ({other}) is not used"),
            format!("two lockfiles: {file} wins (order bun, pnpm, yarn, npm); set packageManager in package.json to choose"),
        ));
    }
    Ok(Manager {
        name,
        lockfile: Some(file),
    })
}

/// The first of the framework's config files that exists, and its text.
fn config_text(input: &Input, stem: &str) -> Result<Option<(String, String)>, PlanError> {
    for ext in ["js", "mjs", "cjs", "ts", "mts"] {
        let name = format!("{stem}.{ext}");
        if let Some(text) = input.tree.read(&name)? {
            return Ok(Some((name, text)));
        }
    }
    Ok(None)
}

/// `output: 'export'` (or `"server"`) as a config file writes it, spaces ignored.
fn sets_output(text: &str, value: &str) -> bool {
    let squashed: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    [
        format!("output:'{value}'"),
        format!("output:\"{value}\""),
        format!("output:`{value}`"),
    ]
    .iter()
    .any(|needle| squashed.contains(needle))
}

pub fn detect(input: &Input) -> Result<Detected, PlanError> {
    let tree = input.tree;
    let text = tree.read("package.json")?.unwrap_or_default();
    let pkg: Value = serde_json::from_str(&text).map_err(|e| PlanError::Invalid {
        file: "package.json".into(),
        message: e.to_string(),
    })?;
    let mut decisions = Vec::new();
    let manager = manager(input, &pkg, &mut decisions)?;
    let tool = if manager.name == "bun" { "bun" } else { "node" };
    let pin = if tool == "bun" {
        tool_versions(tree, &["bun"])?
    } else {
        first_pin(vec![
            version_file(tree, ".nvmrc")?,
            version_file(tree, ".node-version")?,
            tool_versions(tree, &["nodejs", "node"])?,
            pkg.pointer("/engines/node")
                .and_then(Value::as_str)
                .map(|v| Pin::new(v, "package.json (engines.node)")),
        ])
    };
    let version = input.version(tool, pin, false)?;
    let has = |dep: &str| {
        ["dependencies", "devDependencies"]
            .iter()
            .any(|section| pkg.get(section).and_then(|s| s.get(dep)).is_some())
    };
    let script = |name: &str| {
        pkg.pointer(&format!("/scripts/{name}"))
            .and_then(Value::as_str)
    };
    let build = script("build").map(|_| manager.run("build"));
    let start_script = script("start").map(|_| match manager.name {
        "npm" => "npm start".to_string(),
        _ => manager.run("start"),
    });
    let mut static_out = None;
    let (framework, start): (Option<&str>, Option<String>) = if has("next") {
        match config_text(input, "next.config")? {
            Some((file, text)) if sets_output(&text, "export") => {
                static_out = Some(("out", format!("{file} (output: 'export')")));
            }
            _ => {}
        }
        (
            Some("next"),
            start_script
                .clone()
                .or(Some("node_modules/.bin/next start".into())),
        )
    } else if has("nuxt") {
        (Some("nuxt"), Some("node .output/server/index.mjs".into()))
    } else if has("@remix-run/node") || has("@remix-run/serve") || has("@remix-run/react") {
        (
            Some("remix"),
            start_script.clone().or(Some(
                "node_modules/.bin/remix-serve ./build/server/index.js".into(),
            )),
        )
    } else if has("astro") {
        let server = match config_text(input, "astro.config")? {
            Some((_, text)) => sets_output(&text, "server") || sets_output(&text, "hybrid"),
            None => false,
        } || has("@astrojs/node");
        if !server {
            static_out = Some(("dist", "astro without a server adapter".into()));
        }
        (Some("astro"), Some("node ./dist/server/entry.mjs".into()))
    } else if has("@sveltejs/kit") {
        if has("@sveltejs/adapter-static") {
            static_out = Some(("build", "package.json (@sveltejs/adapter-static)".into()));
        }
        (Some("sveltekit"), Some("node build".into()))
    } else if has("react-scripts") {
        static_out = Some(("build", "package.json (react-scripts)".into()));
        (Some("create-react-app"), None)
    } else if has("vite") && start_script.is_none() {
        static_out = Some(("dist", "package.json (vite, no start script)".into()));
        (Some("vite"), None)
    } else {
        let framework = ["express", "fastify", "koa", "hono"]
            .into_iter()
            .find(|f| has(f));
        let main = pkg.get("main").and_then(Value::as_str).map(str::to_string);
        let start = match (start_script.clone(), main) {
            (Some(start), _) => Some(start),
            (None, Some(main)) if tree.is_file(main.trim_start_matches("./"))? => {
                Some(format!("node {}", main.trim_start_matches("./")))
            }
            _ => tree
                .first_file(&["server.js", "index.js", "app.js", "main.js"])?
                .map(|file| format!("node {file}")),
        };
        (framework, start)
    };
    if let Some((dir, why)) = &static_out {
        decisions.push(decision(
            format!("a static site: serve {dir}/ of the build"),
            why.as_str(),
        ));
        if build.is_none() {
            return Err(PlanError::Incomplete(format!(
                "a static site ({}) needs a build script in package.json, or set build_command",
                framework.unwrap_or("node")
            )));
        }
    } else if let Some(start) = &start {
        decisions.push(decision(
            format!("start with `{start}`"),
            start_source(&start_script, start),
        ));
    }
    let output = match (static_out, start) {
        (Some((dir, _)), _) => Output::Static(dir.to_string()),
        (None, Some(start)) => Output::InPlace(Start::Shell(start)),
        (None, None) => Output::InPlace(
            input.missing_start(
                "package.json has no start script, no main, and there is no server.js, index.js, \
             app.js or main.js: add a start script, a Procfile, or set start_command"
                    .into(),
            )?,
        ),
    };
    let mut manifests = vec!["package.json".to_string()];
    manifests.extend(manager.lockfile.map(str::to_string));
    manifests.extend(input.existing(&[".npmrc", ".yarnrc.yml", "pnpm-workspace.yaml"])?);
    let berry = tree.is_file(".yarnrc.yml")?;
    Ok(Detected {
        language: "node",
        framework: framework.map(str::to_string),
        package_manager: Some(manager.name.into()),
        recipe: Recipe {
            image: image(
                if tool == "bun" {
                    &input.config.images.bun
                } else {
                    &input.config.images.node
                },
                &version.version,
            ),
            root_setup: Vec::new(),
            env: vec![("NPM_CONFIG_UPDATE_NOTIFIER".into(), "false".into())],
            manifests,
            install: Some(manager.install(berry)),
            install_after_source: false,
            build,
            // Development dependencies are installed for the build; the app runs in production.
            run_env: vec![
                ("NODE_ENV".into(), "production".into()),
                ("HOST".into(), "0.0.0.0".into()),
            ],
            port: 3000,
            output,
        },
        versions: vec![version],
        decisions,
    })
}

fn start_source(script: &Option<String>, start: &str) -> &'static str {
    if script.as_deref() == Some(start) {
        "package.json (scripts.start)"
    } else if start.starts_with("node ") && !start.contains('/') {
        "package.json (main) or the first of server.js, index.js, app.js, main.js"
    } else {
        "the framework's production server"
    }
}
