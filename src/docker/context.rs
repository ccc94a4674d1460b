//! The build context: a tar of the checkout that honours `.dockerignore` (patterns, `**`,
//! `!` exceptions, last match wins) and always leaves out `.git`. Headers are deterministic
//! (fixed mtime and owner) so an unchanged commit hits the layer cache.

use std::path::Path;

use anyhow::Context;
use globset::{Glob, GlobMatcher};

pub use crate::checkout::{is_regular_file_in, read_checkout_file};

/// A `.dockerignore` larger than this is refused.
pub const MAX_DOCKERIGNORE_BYTES: u64 = 256 * 1024;

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

/// The Dockerfile of a build: a file of the checkout, or one the build plan generated.
#[derive(Debug, Clone, Copy)]
pub enum Dockerfile<'a> {
    /// A path relative to the context's root.
    InTree(&'a str),
    /// Text added to the context as `GENERATED_DOCKERFILE` (a file of that name in the tree is
    /// left out).
    Generated(&'a str),
}

/// The name a generated Dockerfile has in the build context.
pub const GENERATED_DOCKERFILE: &str = ".shard-plan.Dockerfile";

impl Dockerfile<'_> {
    /// Its path in the context.
    pub fn path(&self) -> &str {
        match self {
            Dockerfile::InTree(path) => path,
            Dockerfile::Generated(_) => GENERATED_DOCKERFILE,
        }
    }
}

/// Tars `root` for `docker build`, keeping the Dockerfile whatever the ignore rules say.
pub fn tar_context<W: std::io::Write>(
    root: &Path,
    dockerfile: Dockerfile,
    out: W,
) -> anyhow::Result<W> {
    let rules = match read_checkout_file(root, ".dockerignore", MAX_DOCKERIGNORE_BYTES)? {
        Some(text) => IgnoreRules::parse(&text)?,
        None => IgnoreRules { rules: Vec::new() },
    };
    let mut builder = tar::Builder::new(out);
    builder.mode(tar::HeaderMode::Deterministic);
    builder.follow_symlinks(false);
    // A generated Dockerfile replaces any file of the tree with its name.
    let replaced = matches!(dockerfile, Dockerfile::Generated(_)).then_some(GENERATED_DOCKERFILE);
    add_dir(
        &mut builder,
        root,
        root,
        &rules,
        dockerfile.path(),
        replaced,
    )?;
    if let Dockerfile::Generated(text) = dockerfile {
        let mut header = tar::Header::new_gnu();
        header.set_size(text.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        builder
            .append_data(&mut header, GENERATED_DOCKERFILE, text.as_bytes())
            .context("adding the generated Dockerfile to the build context")?;
    }
    builder
        .into_inner()
        .context("finishing the build context tar")
}

/// Writes the build context of `root` to the file `path` (streamed to Docker from there, never
/// held in memory); answers its size.
pub fn tar_context_file(root: &Path, dockerfile: Dockerfile, path: &Path) -> anyhow::Result<u64> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let out = tar_context(root, dockerfile, std::io::BufWriter::new(file))?;
    let file = out
        .into_inner()
        .map_err(|e| e.into_error())
        .context("writing the build context")?;
    file.sync_data().ok();
    Ok(file.metadata()?.len())
}

fn add_dir<W: std::io::Write>(
    builder: &mut tar::Builder<W>,
    root: &Path,
    dir: &Path,
    rules: &IgnoreRules,
    dockerfile: &str,
    replaced: Option<&str>,
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
        if relative == ".git" || Some(relative.as_str()) == replaced {
            continue;
        }
        let always = relative == dockerfile || relative == ".dockerignore";
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            // A directory is walked even when excluded: an exception may re-include a child.
            add_dir(builder, root, &path, rules, dockerfile, replaced)?;
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
        let tar_bytes = tar_context(root, Dockerfile::InTree("Dockerfile"), Vec::new()).unwrap();
        let mut archive = tar::Archive::new(tar_bytes.as_slice());
        let mut names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, [".dockerignore", "Dockerfile", "app.txt"]);
    }

    #[test]
    fn files_are_never_read_through_symlinks() {
        let dir = tempfile::TempDir::new().unwrap();
        let root = dir.path();
        let outside = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(outside.path(), "host-secret-content\n").unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join(".dockerignore")).unwrap();
        std::fs::write(root.join("Dockerfile"), "FROM scratch\n").unwrap();
        let err = tar_context(root, Dockerfile::InTree("Dockerfile"), Vec::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("symbolic link"), "{err}");
        assert!(!err.contains("host-secret-content"));
        std::fs::remove_file(root.join(".dockerignore")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", root.join(".dockerignore")).unwrap();
        assert!(tar_context(root, Dockerfile::InTree("Dockerfile"), Vec::new()).is_err());
        // A directory link on the way to the Dockerfile is refused too.
        std::fs::create_dir(root.join("real")).unwrap();
        std::fs::write(root.join("real/Dockerfile"), "FROM scratch\n").unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("linked")).unwrap();
        assert!(is_regular_file_in(root, "real/Dockerfile").unwrap());
        assert!(is_regular_file_in(root, "linked/Dockerfile").is_err());
        assert!(!is_regular_file_in(root, "missing/Dockerfile").unwrap());
        // A big file is refused rather than read whole.
        std::fs::write(root.join("big"), vec![b'x'; 2048]).unwrap();
        assert!(read_checkout_file(root, "big", 1024).is_err());
        assert_eq!(
            read_checkout_file(root, "big", 4096)
                .unwrap()
                .unwrap()
                .len(),
            2048
        );
    }
}
