//! The build context: a tar of the checkout that honours `.dockerignore` (patterns, `**`,
//! `!` exceptions, last match wins) and always leaves out `.git`. Headers are deterministic
//! (fixed mtime and owner) so an unchanged commit hits the layer cache.

use std::path::Path;

use anyhow::Context;
use globset::{Glob, GlobMatcher};

struct Rule {
    matcher: GlobMatcher,
    exclude: bool,
}

/// The `.dockerignore` rules of a checkout.
pub struct IgnoreRules {
    rules: Vec<Rule>,
}

impl IgnoreRules {
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut rules = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (exclude, pattern) = match line.strip_prefix('!') {
                Some(rest) => (false, rest.trim()),
                None => (true, line),
            };
            let pattern = pattern
                .trim_start_matches("./")
                .trim_start_matches('/')
                .trim_end_matches('/');
            if pattern.is_empty() {
                continue;
            }
            let glob = Glob::new(pattern)
                .with_context(|| format!(".dockerignore: bad pattern '{pattern}'"))?;
            rules.push(Rule {
                matcher: glob.compile_matcher(),
                exclude,
            });
        }
        Ok(Self { rules })
    }

    /// True when `relative` (slash-separated) is left out: the last rule matching the path or
    /// one of its parent directories decides.
    pub fn is_excluded(&self, relative: &str) -> bool {
        let mut excluded = false;
        for rule in &self.rules {
            let mut prefix_end = Some(relative.len());
            while let Some(end) = prefix_end {
                if rule.matcher.is_match(&relative[..end]) {
                    excluded = rule.exclude;
                    break;
                }
                prefix_end = relative[..end].rfind('/');
            }
        }
        excluded
    }
}

/// Tars `root` for `docker build`, keeping `dockerfile` (relative) whatever the ignore rules say.
pub fn tar_context(root: &Path, dockerfile: &str) -> anyhow::Result<Vec<u8>> {
    let rules = match std::fs::read_to_string(root.join(".dockerignore")) {
        Ok(text) => IgnoreRules::parse(&text)?,
        Err(_) => IgnoreRules { rules: Vec::new() },
    };
    let mut builder = tar::Builder::new(Vec::new());
    builder.mode(tar::HeaderMode::Deterministic);
    builder.follow_symlinks(false);
    add_dir(&mut builder, root, root, &rules, dockerfile)?;
    builder
        .into_inner()
        .context("finishing the build context tar")
}

fn add_dir(
    builder: &mut tar::Builder<Vec<u8>>,
    root: &Path,
    dir: &Path,
    rules: &IgnoreRules,
    dockerfile: &str,
) -> anyhow::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let relative = path
            .strip_prefix(root)
            .expect("walk stays under root")
            .to_string_lossy()
            .replace('\\', "/");
        if relative == ".git" {
            continue;
        }
        let always = relative == dockerfile || relative == ".dockerignore";
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            // A directory is walked even when excluded: an exception may re-include a child.
            add_dir(builder, root, &path, rules, dockerfile)?;
        } else if always || !rules.is_excluded(&relative) {
            builder
                .append_path_with_name(&path, &relative)
                .with_context(|| format!("adding {relative} to the build context"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerignore_semantics() {
        let rules = IgnoreRules::parse(
            "# comment\nnode_modules\n*.log\n!keep.log\n/secret/\ndocs/**/*.md\n",
        )
        .unwrap();
        assert!(rules.is_excluded("node_modules"));
        assert!(rules.is_excluded("node_modules/a/b.js"));
        assert!(rules.is_excluded("debug.log"));
        assert!(!rules.is_excluded("keep.log"));
        assert!(rules.is_excluded("secret/key"));
        assert!(rules.is_excluded("docs/a/b/c.md"));
        assert!(!rules.is_excluded("docs/a/b/c.txt"));
        assert!(!rules.is_excluded("src/main.rs"));
    }

    #[test]
    fn context_tar_leaves_out_ignored_files_and_git() {
        let dir = tempfile::TempDir::new().unwrap();
        let root = dir.path();
        std::fs::write(root.join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(root.join(".dockerignore"), "*.secret\nDockerfile\n").unwrap();
        std::fs::write(root.join("app.txt"), "hi").unwrap();
        std::fs::write(root.join("x.secret"), "no").unwrap();
        std::fs::create_dir(root.join(".git")).unwrap();
        std::fs::write(root.join(".git/HEAD"), "ref").unwrap();
        let tar_bytes = tar_context(root, "Dockerfile").unwrap();
        let mut archive = tar::Archive::new(tar_bytes.as_slice());
        let mut names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, [".dockerignore", "Dockerfile", "app.txt"]);
    }
}
