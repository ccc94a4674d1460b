//! The `[build]` section: the base images of builds without a Dockerfile, and the versions
//! they offer. An image is a template; `{version}` is replaced by the version the plan chose.
//! The defaults are the official images; an installation without registry access points them
//! at its own.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BuildConfig {
    pub images: BuildImages,
    /// Per runtime, the versions its image offers; the first is the default when the
    /// repository pins none.
    pub versions: BuildVersions,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BuildImages {
    pub node: String,
    pub bun: String,
    pub python: String,
    pub go: String,
    pub rust: String,
    pub ruby: String,
    pub php: String,
    /// Where `composer` is copied from into PHP builds.
    pub composer: String,
    pub maven: String,
    pub gradle: String,
    /// What a built Java app runs on.
    pub jre: String,
    /// What a compiled app (Rust, or Go with a shell start command) and a bare
    /// `start_command` run on.
    pub debian: String,
}

impl Default for BuildImages {
    fn default() -> Self {
        Self {
            node: "node:{version}-bookworm-slim".into(),
            bun: "oven/bun:{version}-slim".into(),
            python: "python:{version}-slim-bookworm".into(),
            go: "golang:{version}-bookworm".into(),
            rust: "rust:{version}-slim-bookworm".into(),
            ruby: "ruby:{version}-slim-bookworm".into(),
            php: "php:{version}-cli-bookworm".into(),
            composer: "composer:2".into(),
            maven: "maven:3-eclipse-temurin-{version}".into(),
            gradle: "gradle:jdk{version}".into(),
            jre: "eclipse-temurin:{version}-jre".into(),
            debian: "debian:bookworm-slim".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BuildVersions {
    pub node: Vec<String>,
    pub bun: Vec<String>,
    pub python: Vec<String>,
    pub go: Vec<String>,
    pub rust: Vec<String>,
    pub ruby: Vec<String>,
    pub php: Vec<String>,
    pub java: Vec<String>,
}

fn list(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

impl Default for BuildVersions {
    fn default() -> Self {
        Self {
            node: list(&["22", "24", "20", "18"]),
            bun: list(&["1"]),
            python: list(&["3.12", "3.13", "3.11", "3.10", "3.9"]),
            go: list(&["1.24", "1.25", "1.23", "1.22"]),
            rust: list(&["1"]),
            ruby: list(&["3.3", "3.4", "3.2", "3.1"]),
            php: list(&["8.3", "8.4", "8.2", "8.1"]),
            java: list(&["21", "25", "17", "11"]),
        }
    }
}

impl BuildVersions {
    /// The versions offered for `tool` (empty for one shard does not know).
    pub fn of(&self, tool: &str) -> &[String] {
        match tool {
            "node" => &self.node,
            "bun" => &self.bun,
            "python" => &self.python,
            "go" => &self.go,
            "rust" => &self.rust,
            "ruby" => &self.ruby,
            "php" => &self.php,
            "java" => &self.java,
            _ => &[],
        }
    }
}

impl BuildConfig {
    /// Checks the templates at load: every image names something, and a runtime with versions
    /// has a `{version}` slot or a single version.
    pub fn check(&self) -> Result<(), String> {
        let i = &self.images;
        let images = [
            ("node", &i.node),
            ("bun", &i.bun),
            ("python", &i.python),
            ("go", &i.go),
            ("rust", &i.rust),
            ("ruby", &i.ruby),
            ("php", &i.php),
            ("composer", &i.composer),
            ("maven", &i.maven),
            ("gradle", &i.gradle),
            ("jre", &i.jre),
            ("debian", &i.debian),
        ];
        for (name, image) in images {
            let bad = image.is_empty()
                || image.len() > 255
                || image.chars().any(|c| c.is_whitespace() || c.is_control());
            if bad {
                return Err(format!(
                    "build.images.{name} must be an image reference without spaces"
                ));
            }
        }
        for tool in ["node", "bun", "python", "go", "rust", "ruby", "php", "java"] {
            for version in self.versions.of(tool) {
                let ok = !version.is_empty()
                    && version.len() <= 32
                    && version
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
                if !ok {
                    return Err(format!(
                        "build.versions.{tool}: '{version}' is not a version tag"
                    ));
                }
            }
        }
        Ok(())
    }
}
