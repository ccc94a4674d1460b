//! Files of a checkout, read safely: never through a symbolic link (a repository may link to
//! `/dev/zero` or to another tenant's files), never out of the tree (`..`), never more than a
//! stated size. The build context and the build planner read a repository only through these.

use std::path::Path;

use anyhow::Context;

/// Checks that `relative` names a regular file inside `root` reached through no symlink (a
/// repository may contain links to `/dev/zero` or another tenant's files); `Ok(false)` when it
/// does not exist.
pub fn is_regular_file_in(root: &Path, relative: &str) -> anyhow::Result<bool> {
    let mut path = root.to_path_buf();
    let parts: Vec<&str> = relative.split('/').filter(|p| !p.is_empty()).collect();
    for (i, part) in parts.iter().enumerate() {
        if *part == ".." {
            anyhow::bail!("'{relative}' leaves the repository");
        }
        path.push(part);
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e).with_context(|| format!("reading {relative}")),
        };
        if meta.file_type().is_symlink() {
            anyhow::bail!(
                "'{relative}' goes through a symbolic link; shard does not follow links in a repository"
            );
        }
        let last = i + 1 == parts.len();
        if last && !meta.is_file() {
            anyhow::bail!("'{relative}' is not a regular file");
        }
    }
    Ok(!parts.is_empty())
}

/// Reads a small text file of the checkout: never through a symlink, at most `max` bytes.
/// `None` when it does not exist.
pub fn read_checkout_file(root: &Path, relative: &str, max: u64) -> anyhow::Result<Option<String>> {
    use std::io::Read;
    if !is_regular_file_in(root, relative)? {
        return Ok(None);
    }
    let file =
        std::fs::File::open(root.join(relative)).with_context(|| format!("opening {relative}"))?;
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {relative}"))?;
    if bytes.len() as u64 > max {
        anyhow::bail!("{relative} is larger than {max} bytes");
    }
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// What a directory entry of a checkout is (a symbolic link is never followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    File,
    Dir,
    Link,
    Other,
}

/// The entries of directory `relative` of `root`, sorted by name, at most `max` of them (a
/// directory with more is read only that far). Empty when it does not exist or is reached through a
/// link.
pub fn list_dir(root: &Path, relative: &str, max: usize) -> anyhow::Result<Vec<(String, Kind)>> {
    let mut path = root.to_path_buf();
    for part in relative.split('/').filter(|p| !p.is_empty() && *p != ".") {
        if part == ".." {
            anyhow::bail!("'{relative}' leaves the repository");
        }
        path.push(part);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Ok(Vec::new()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("reading {relative}")),
        }
    }
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(&path).with_context(|| format!("listing {relative}"))? {
        if entries.len() >= max {
            break;
        }
        let entry = entry.with_context(|| format!("listing {relative}"))?;
        let kind = match entry.file_type() {
            Ok(t) if t.is_symlink() => Kind::Link,
            Ok(t) if t.is_dir() => Kind::Dir,
            Ok(t) if t.is_file() => Kind::File,
            _ => Kind::Other,
        };
        entries.push((entry.file_name().to_string_lossy().into_owned(), kind));
    }
    entries.sort();
    Ok(entries)
}
