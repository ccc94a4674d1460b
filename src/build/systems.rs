//! Which ecosystem an app is (the order of the module's rule 3), and the compiled ones: Go,
//! Rust, Java. Ruby and PHP are in `scripting`, Node and Python have modules of their own.

use super::dockerfile::{HOME, Output, Recipe, Start};
use super::repo::{Effective, Procfile};
use super::version::{self, Pin};
use super::{Detected, PlanError, Tree, decision, image};
use crate::config::BuildConfig;

/// The marker files of each ecosystem, in the order they are tried.
const ORDER: &[(&str, &[&str])] = &[
    ("go", &["go.mod"]),
    ("rust", &["Cargo.toml"]),
    ("java", &["pom.xml", "build.gradle", "build.gradle.kts"]),
    ("ruby", &["Gemfile"]),
    ("php", &["composer.json"]),
    (
        "python",
        &["pyproject.toml", "requirements.txt", "setup.py"],
    ),
    ("node", &["package.json"]),
];

/// What a detector gets.
pub struct Input<'a> {
    pub tree: &'a Tree,
    pub config: &'a BuildConfig,
    /// A start command is given (settings, `shard.toml` or a Procfile), so the detector need
    /// not find one.
    pub start_given: bool,
    /// A static directory is given.
    pub static_given: bool,
}

impl Input<'_> {
    /// Resolves `tool`'s version from the first pin found.
    pub fn version(
        &self,
        tool: &str,
        pin: Option<Pin>,
        minimum: bool,
    ) -> Result<version::Version, PlanError> {
        version::resolve(tool, pin.as_ref(), self.config.versions.of(tool), minimum)
            .map_err(PlanError::Version)
    }

    /// The manifests of `names` that exist.
    pub fn existing(&self, names: &[&str]) -> Result<Vec<String>, PlanError> {
        let mut found = Vec::new();
        for name in names {
            if self.tree.is_file(name)? {
                found.push(name.to_string());
            }
        }
        Ok(found)
    }

    /// A start the detector could not find: fine when one is given, else `why` fails the plan.
    pub fn missing_start(&self, why: String) -> Result<Start, PlanError> {
        if self.start_given || self.static_given {
            Ok(Start::Shell(String::new()))
        } else {
            Err(PlanError::Incomplete(why))
        }
    }
}

/// The ecosystem of `tree`, or `None` when no marker is there.
pub fn detect(
    tree: &Tree,
    config: &BuildConfig,
    o: &Effective,
    procfile: Option<&Procfile>,
) -> Result<Option<Detected>, PlanError> {
    let mut found = Vec::new();
    for (language, markers) in ORDER {
        if let Some(marker) = tree.first_file(markers)? {
            found.push((*language, marker));
        }
    }
    let Some(&(language, marker)) = found.first() else {
        return Ok(None);
    };
    let input = Input {
        tree,
        config,
        start_given: o.start.value.is_some() || procfile.is_some(),
        static_given: o.static_dir.value.is_some(),
    };
    let mut detected = match language {
        "go" => go(&input)?,
        "rust" => rust(&input)?,
        "java" => java(&input, marker)?,
        "ruby" => super::scripting::ruby(&input)?,
        "php" => super::scripting::php(&input)?,
        "python" => super::python::detect(&input)?,
        _ => super::node::detect(&input)?,
    };
    let mut decisions = vec![decision(format!("{language} app"), marker)];
    for (other, other_marker) in &found[1..] {
        decisions.push(decision(
            format!("{other} ({other_marker}) is not what runs"),
            format!("{language} comes first (go, rust, java, ruby, php, python, node)"),
        ));
    }
    decisions.append(&mut detected.decisions);
    detected.decisions = decisions;
    Ok(Some(detected))
}

/// The version `.tool-versions` pins for one of `names` (asdf and mise write it).
pub fn tool_versions(tree: &Tree, names: &[&str]) -> Result<Option<Pin>, PlanError> {
    let Some(text) = tree.read(".tool-versions")? else {
        return Ok(None);
    };
    for (n, line) in text.lines().enumerate() {
        let mut words = line.split_whitespace();
        if let (Some(tool), Some(version)) = (words.next(), words.next())
            && names.contains(&tool)
        {
            // asdf's Java names carry a vendor: `temurin-21.0.2+13.0.LTS`.
            let version = version.rsplit('-').next().unwrap_or(version);
            let version = version.split('+').next().unwrap_or(version);
            return Ok(Some(Pin::new(version, format!(".tool-versions:{}", n + 1))));
        }
    }
    Ok(None)
}

/// A one-line version file (`.nvmrc`, `.python-version`, `.ruby-version`, `rust-toolchain`).
pub fn version_file(tree: &Tree, name: &str) -> Result<Option<Pin>, PlanError> {
    Ok(tree.read(name)?.and_then(|text| {
        text.lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|line| Pin::new(line, format!("{name}:1")))
    }))
}

/// The first of several pins.
pub fn first_pin(pins: Vec<Option<Pin>>) -> Option<Pin> {
    pins.into_iter().flatten().next()
}

fn go(input: &Input) -> Result<Detected, PlanError> {
    let tree = input.tree;
    let text = tree.read("go.mod")?.unwrap_or_default();
    let mut module = None;
    let mut pin = None;
    for (n, line) in text.lines().enumerate() {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("module"), Some(name)) => module = Some(name.trim_matches('"').to_string()),
            (Some("go"), Some(v)) => pin = Some(Pin::new(v, format!("go.mod:{} (go line)", n + 1))),
            _ => {}
        }
    }
    let pin = first_pin(vec![pin, tool_versions(tree, &["golang", "go"])?]);
    let version = input.version("go", pin, true)?;
    let package = if tree.is_file("main.go")? {
        ".".to_string()
    } else {
        let commands: Vec<String> = tree
            .list("cmd")
            .into_iter()
            .filter(|(_, kind)| *kind == crate::checkout::Kind::Dir)
            .map(|(name, _)| name)
            .collect();
        let last = module
            .as_deref()
            .and_then(|m| m.rsplit('/').next())
            .unwrap_or("");
        match commands.as_slice() {
            [one] => format!("./cmd/{one}"),
            many if many.iter().any(|c| c == last) => format!("./cmd/{last}"),
            [] => {
                return Err(PlanError::Incomplete(
                    "go.mod found, but no main.go at the root and no cmd/ directory: set \
                     root_dir to the main package, or add a Dockerfile"
                        .into(),
                ));
            }
            many => {
                return Err(PlanError::Incomplete(format!(
                    "go.mod found, with several commands under cmd/ ({}) and none named like the \
                     module: set build_command to build the one to deploy, e.g. \
                     `go build -o {HOME}/server ./cmd/{}`",
                    many.join(", "),
                    many[0]
                )));
            }
        }
    };
    let mut decisions = vec![decision(
        format!("build the package {package}"),
        if package == "." { "main.go" } else { "cmd/" },
    )];
    let framework = [
        "gin-gonic/gin",
        "labstack/echo",
        "gofiber/fiber",
        "go-chi/chi",
    ]
    .iter()
    .find(|dep| text.contains(*dep))
    .map(|dep| dep.rsplit('/').next().unwrap_or(dep).to_string());
    if let Some(f) = &framework {
        decisions.push(decision(
            format!("{f} (a library; any HTTP server works)"),
            "go.mod",
        ));
    }
    Ok(Detected {
        language: "go",
        framework,
        package_manager: Some("go modules".into()),
        recipe: Recipe {
            image: image(&input.config.images.go, &version.version),
            root_setup: Vec::new(),
            // No toolchain download behind the plan's back: the image's Go builds, or fails.
            env: vec![
                ("GOTOOLCHAIN".into(), "local".into()),
                ("CGO_ENABLED".into(), "0".into()),
            ],
            manifests: input.existing(&["go.mod", "go.sum"])?,
            install: Some("go mod download".into()),
            install_after_source: false,
            build: Some(format!(
                "go build -trimpath -ldflags=\"-s -w\" -o {HOME}/server {package}"
            )),
            run_env: Vec::new(),
            port: 8080,
            output: Output::Runtime {
                image: "scratch".into(),
                collect: None,
                copies: vec![
                    (format!("{HOME}/server"), "/app/server".into()),
                    (
                        "/etc/ssl/certs/ca-certificates.crt".into(),
                        "/etc/ssl/certs/ca-certificates.crt".into(),
                    ),
                ],
                start: Start::Exec(vec!["/app/server".into()]),
            },
        },
        versions: vec![version],
        decisions,
    })
}

fn rust(input: &Input) -> Result<Detected, PlanError> {
    let tree = input.tree;
    let text = tree.read("Cargo.toml")?.unwrap_or_default();
    let manifest: toml::Table = toml::from_str(&text).map_err(|e| PlanError::Invalid {
        file: "Cargo.toml".into(),
        message: e.message().to_string(),
    })?;
    let bin_name = manifest
        .get("bin")
        .and_then(|b| b.as_array())
        .and_then(|bins| bins.first())
        .and_then(|b| b.get("name"))
        .and_then(|n| n.as_str())
        .or_else(|| {
            manifest
                .get("package")
                .and_then(|p| p.get("name"))
                .and_then(|n| n.as_str())
        });
    let Some(bin) = bin_name.map(str::to_string) else {
        return Err(PlanError::Incomplete(
            "Cargo.toml has no [package] (a workspace): set root_dir to the member to deploy"
                .into(),
        ));
    };
    if bin.is_empty()
        || !bin
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(PlanError::Invalid {
            file: "Cargo.toml".into(),
            message: format!("'{bin}' is not a binary name shard can build"),
        });
    }
    let toolchain = match tree.read("rust-toolchain.toml")? {
        Some(text) => toml::from_str::<toml::Table>(&text)
            .ok()
            .and_then(|t| {
                t.get("toolchain")?
                    .get("channel")?
                    .as_str()
                    .map(str::to_string)
            })
            .map(|c| Pin::new(&c, "rust-toolchain.toml (toolchain.channel)")),
        None => version_file(tree, "rust-toolchain")?,
    };
    let pin = first_pin(vec![toolchain, tool_versions(tree, &["rust"])?]);
    let version = input.version("rust", pin, false)?;
    let locked = tree.is_file("Cargo.lock")?;
    let deps = manifest.get("dependencies").and_then(|d| d.as_table());
    let framework = ["axum", "actix-web", "rocket", "warp", "poem"]
        .iter()
        .find(|f| deps.is_some_and(|d| d.contains_key(**f)))
        .map(|f| f.to_string());
    Ok(Detected {
        language: "rust",
        framework,
        package_manager: Some("cargo".into()),
        recipe: Recipe {
            image: image(&input.config.images.rust, &version.version),
            root_setup: Vec::new(),
            env: Vec::new(),
            manifests: Vec::new(),
            install: Some(
                if locked {
                    "cargo fetch --locked"
                } else {
                    "cargo fetch"
                }
                .into(),
            ),
            // Cargo will not read a manifest without its sources, so the install follows them.
            install_after_source: true,
            build: Some(format!(
                "cargo build --release{}",
                if locked { " --locked" } else { "" }
            )),
            run_env: Vec::new(),
            port: 8080,
            output: Output::Runtime {
                image: input.config.images.debian.clone(),
                collect: None,
                copies: vec![(format!("/app/target/release/{bin}"), "/app/server".into())],
                start: Start::Exec(vec!["/app/server".into()]),
            },
        },
        versions: vec![version],
        decisions: vec![decision(
            format!("run the binary {bin}"),
            "Cargo.toml ([[bin]] or [package] name)",
        )],
    })
}

/// The text of `<tag>` in an XML file (the first one).
fn xml_tag<'a>(text: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = text.find(&open)? + open.len();
    let end = text[start..].find('<')? + start;
    Some(text[start..end].trim())
}

fn java(input: &Input, marker: &str) -> Result<Detected, PlanError> {
    let tree = input.tree;
    let text = tree.read(marker)?.unwrap_or_default();
    let maven = marker == "pom.xml";
    let mut pin = tool_versions(tree, &["java"])?;
    if pin.is_none() && maven {
        for tag in [
            "java.version",
            "maven.compiler.release",
            "maven.compiler.target",
        ] {
            if let Some(v) = xml_tag(&text, tag) {
                pin = Some(Pin::new(v, format!("pom.xml <{tag}>")));
                break;
            }
        }
    }
    if pin.is_none() && !maven {
        for (n, line) in text.lines().enumerate() {
            let found = ["JavaLanguageVersion.of(", "JavaVersion.VERSION_"]
                .iter()
                .find_map(|p| line.split(p).nth(1));
            if let Some(rest) = found {
                let v: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_digit() || *c == '_')
                    .collect();
                pin = Some(Pin::new(
                    &v.replace('_', "."),
                    format!("{marker}:{}", n + 1),
                ));
                break;
            }
        }
    }
    let version = input.version("java", pin, false)?;
    let spring = text.contains("spring-boot");
    let (build_image, install, build, jars) = if maven {
        (
            image(&input.config.images.maven, &version.version),
            "mvn -B -q dependency:go-offline".to_string(),
            "mvn -B -DskipTests package".to_string(),
            "target",
        )
    } else {
        let gradle = if tree.is_file("gradlew")? {
            "./gradlew"
        } else {
            "gradle"
        };
        (
            image(&input.config.images.gradle, &version.version),
            format!("{gradle} --no-daemon dependencies"),
            format!("{gradle} --no-daemon build -x test"),
            "build/libs",
        )
    };
    Ok(Detected {
        language: "java",
        framework: spring.then(|| "spring-boot".into()),
        package_manager: Some(if maven { "maven" } else { "gradle" }.into()),
        recipe: Recipe {
            image: build_image,
            root_setup: Vec::new(),
            env: Vec::new(),
            manifests: if maven {
                vec!["pom.xml".into()]
            } else {
                Vec::new()
            },
            install: Some(install),
            install_after_source: !maven,
            build: Some(build),
            run_env: Vec::new(),
            port: 8080,
            output: Output::Runtime {
                image: image(&input.config.images.jre, &version.version),
                collect: Some(format!(
                    "cp \"$(ls {jars}/*.jar | grep -v -e '\\.original$' -e '-plain\\.jar$' | head -n 1)\" {HOME}/app.jar"
                )),
                copies: vec![(format!("{HOME}/app.jar"), "/app/app.jar".into())],
                start: Start::Shell("java -Dserver.port=$PORT -jar /app/app.jar".into()),
            },
        },
        versions: vec![version],
        decisions: vec![decision(
            format!("run the jar that {jars}/ holds after the build"),
            marker,
        )],
    })
}
