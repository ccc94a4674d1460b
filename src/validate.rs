//! The grammars untrusted names must match: project slugs, usernames, git URLs, branch names,
//! env var keys, Dockerfile paths, health paths and domains. Each check returns the reason a
//! value was refused, worded for the person who typed it.

pub type Check = Result<(), String>;

pub use crate::config::{custom_domain, dns_label as slug, domain};

/// Turns a display name into its slug: lowercase, runs of other characters become one `-`.
pub fn slugify(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// A project's display name: 1–100 characters, no control characters, and it must slugify.
pub fn project_name(value: &str) -> Check {
    if value.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if value.chars().count() > 100 {
        return Err("must be at most 100 characters".into());
    }
    if value.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    let slug_value = slugify(value);
    if slug_value.is_empty() {
        return Err("must contain at least one ASCII letter or digit".into());
    }
    slug(&slug_value).map_err(|why| format!("its slug '{slug_value}' {why}"))?;
    if preview_shaped(&slug_value) {
        return Err(format!(
            "its slug '{slug_value}' looks like a preview host (<8 hex>-<slug> or pr-<n>-<slug>), \
             which would take another project's preview address; choose another name"
        ));
    }
    Ok(())
}

/// Whether a slug has the shape of a preview host's first label: a deployment's short id
/// (8 hex digits) or a pull request (`pr-<number>`) before a dash.
pub fn preview_shaped(slug: &str) -> bool {
    let hex = slug.len() > 9
        && slug.as_bytes()[8] == b'-'
        && slug[..8].bytes().all(|b| b.is_ascii_hexdigit());
    let pr = slug
        .strip_prefix("pr-")
        .and_then(|rest| rest.split_once('-'))
        .is_some_and(|(n, tail)| {
            !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && !tail.is_empty()
        });
    hex || pr
}

/// 1–64 of `a-z 0-9 . _ -`, starting with a letter or digit.
pub fn username(value: &str) -> Check {
    if value.is_empty() || value.len() > 64 {
        return Err("must be 1 to 64 characters".into());
    }
    if !value.bytes().all(|b| {
        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_' || b == b'-'
    }) {
        return Err("may only contain lowercase letters, digits, '.', '_' and '-'".into());
    }
    if !value.as_bytes()[0].is_ascii_alphanumeric() {
        return Err("must start with a letter or digit".into());
    }
    Ok(())
}

pub const MIN_PASSWORD_LEN: usize = 8;
pub const MAX_PASSWORD_LEN: usize = 1024;

pub fn password(value: &str) -> Check {
    let len = value.chars().count();
    if len < MIN_PASSWORD_LEN {
        return Err(format!("must be at least {MIN_PASSWORD_LEN} characters"));
    }
    if value.len() > MAX_PASSWORD_LEN {
        return Err(format!("must be at most {MAX_PASSWORD_LEN} bytes"));
    }
    Ok(())
}

/// A git remote shard may fetch: http(s) with a host, no credentials, nothing option-like.
/// `file://` is accepted only when the admin enabled local sources.
pub fn git_url(value: &str, allow_local: bool) -> Check {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.len() > 2048 {
        return Err("must be at most 2048 characters".into());
    }
    if value.starts_with('-') {
        return Err("must not start with '-'".into());
    }
    if value.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("must not contain spaces or control characters".into());
    }
    if value.to_ascii_lowercase().starts_with("ext::") || value.contains("::") {
        return Err("remote helper URLs (ext::, fd::) are not allowed".into());
    }
    let url = url::Url::parse(value)
        .map_err(|e| format!("is not a valid URL ({e}); use https://host/owner/repo.git"))?;
    match url.scheme() {
        "http" | "https" => {}
        "file" if allow_local => return Ok(()),
        "file" => return Err("file:// URLs are not allowed; use an https:// URL".into()),
        other => return Err(format!("scheme '{other}' is not allowed; use https://")),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("must name a host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "must not contain credentials; connect a git account or set a token instead".into(),
        );
    }
    if url.path().trim_matches('/').is_empty() {
        return Err("must name a repository path".into());
    }
    Ok(())
}

/// A branch name by git's ref rules (`git check-ref-format --branch`).
pub fn branch(value: &str) -> Check {
    if value.is_empty() || value.len() > 255 {
        return Err("must be 1 to 255 characters".into());
    }
    if value.starts_with('-') {
        return Err("must not start with '-'".into());
    }
    if value == "@" || value.contains("@{") {
        return Err("must not be '@' or contain '@{'".into());
    }
    if value.contains("..") {
        return Err("must not contain '..'".into());
    }
    if let Some(c) = value
        .chars()
        .find(|c| c.is_ascii_control() || " ~^:?*[\\".contains(*c) || *c == '\u{7f}')
    {
        return Err(format!("must not contain {c:?}"));
    }
    if value.starts_with('/') || value.ends_with('/') || value.contains("//") {
        return Err("must not start or end with '/' or contain '//'".into());
    }
    if value.ends_with('.') {
        return Err("must not end with '.'".into());
    }
    for part in value.split('/') {
        if part.starts_with('.') {
            return Err("no path component may start with '.'".into());
        }
        if part.ends_with(".lock") {
            return Err("no path component may end with '.lock'".into());
        }
    }
    Ok(())
}

/// `[A-Za-z_][A-Za-z0-9_]*`, at most 256 characters.
pub fn env_key(value: &str) -> Check {
    let mut bytes = value.bytes();
    let ok_first = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    if !ok_first || !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err("must match [A-Za-z_][A-Za-z0-9_]*".into());
    }
    if value.len() > 256 {
        return Err("must be at most 256 characters".into());
    }
    Ok(())
}

/// A node label key or value as shard accepts it in placements: 1–63 of `A-Z a-z 0-9 . _ -`,
/// starting with a letter or digit (so a Swarm constraint built from it cannot carry an
/// operator or a second expression).
pub fn node_label(value: &str) -> Check {
    if value.is_empty() || value.len() > 63 {
        return Err("must be 1 to 63 characters".into());
    }
    if !value.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err("must start with a letter or digit".into());
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err("may only contain letters, digits, '.', '_' and '-'".into());
    }
    Ok(())
}

/// At most 10 node labels, each key and value a `node_label`.
pub fn placement(labels: &std::collections::BTreeMap<String, String>) -> Check {
    if labels.len() > 10 {
        return Err("may name at most 10 labels".into());
    }
    for (key, value) in labels {
        node_label(key).map_err(|why| format!("label name '{key}' {why}"))?;
        node_label(value).map_err(|why| format!("the value of '{key}' {why}"))?;
    }
    Ok(())
}

/// A path relative to the checkout that cannot leave it.
pub fn dockerfile_path(value: &str) -> Check {
    if value.is_empty() || value.len() > 255 {
        return Err("must be 1 to 255 characters".into());
    }
    if value.starts_with('/') || value.starts_with('\\') || value.contains(':') {
        return Err("must be a path relative to the repository root".into());
    }
    if value.chars().any(|c| c.is_control() || c == '\\') {
        return Err("must not contain control characters or backslashes".into());
    }
    if value.split('/').any(|part| part == "..") {
        return Err("must not contain '..'".into());
    }
    if value.ends_with('/') {
        return Err("must name a file, not a directory".into());
    }
    Ok(())
}

/// An HTTP path starting with `/`, printable ASCII without spaces.
pub fn health_path(value: &str) -> Check {
    if !value.starts_with('/') {
        return Err("must start with '/'".into());
    }
    if value.len() > 1024 {
        return Err("must be at most 1024 characters".into());
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be printable ASCII without spaces".into());
    }
    Ok(())
}

/// The directory of a built image that holds a static site: absolute, no `..`, printable.
pub fn static_dir(value: &str) -> Check {
    if !value.starts_with('/') || value.len() > 255 {
        return Err("must be an absolute path of at most 255 characters, e.g. /app/dist".into());
    }
    if value.split('/').any(|part| part == "..") || value.chars().any(char::is_control) {
        return Err("must not contain '..' or control characters".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn node_labels_cannot_smuggle_constraint_operators() {
        use super::node_label;
        assert!(node_label("edge").is_ok());
        assert!(node_label("eu-west.1_a").is_ok());
        for bad in [
            "",
            "a==b",
            "a!=b",
            "a b",
            "-lead",
            ".x",
            "é",
            &"x".repeat(64),
        ] {
            assert!(node_label(bad).is_err(), "{bad:?} was accepted");
        }
    }

    use super::*;

    #[test]
    fn custom_domains() {
        assert_eq!(
            custom_domain(" App.Example.COM. ").unwrap(),
            "app.example.com"
        );
        assert_eq!(custom_domain("*.example.com").unwrap(), "*.example.com");
        for bad in [
            "localhost",
            "10.0.0.1",
            "a..b",
            "-a.com",
            "a_b.com",
            "*.com",
            "a.*.com",
            "",
            "exa mple.com",
        ] {
            assert!(custom_domain(bad).is_err(), "{bad}");
        }
        assert!(custom_domain(&format!("{}.com", "a".repeat(64))).is_err());
    }

    #[test]
    fn slugs() {
        assert_eq!(slugify("My Blog!"), "my-blog");
        assert_eq!(slugify("--a__b--"), "a-b");
        assert!(slug("a").is_ok());
        assert!(slug(&"a".repeat(64)).is_err());
        assert!(slug("-a").is_err());
        assert!(slug("A").is_err());
        assert!(project_name("!!!").is_err());
        assert!(project_name(&"a".repeat(70)).is_err());
        assert!(project_name("ok\u{7}").is_err());
    }

    #[test]
    fn preview_shaped_names_are_refused() {
        for name in ["0123abcd-blog", "deadbeef blog", "pr-12-blog", "PR 7 shop"] {
            assert!(project_name(name).is_err(), "{name}");
        }
        for name in [
            "blog",
            "deadbeef",
            "pr-blog",
            "pr-12",
            "cafe-babe-blog",
            "0123abcg-blog",
        ] {
            assert!(project_name(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn git_urls() {
        assert!(git_url("https://github.com/a/b.git", false).is_ok());
        assert!(git_url("http://127.0.0.1:9000/repo.git", false).is_ok());
        for bad in [
            "file:///etc",
            "ext::sh -c touch% /tmp/pwned",
            "-uhttps://x/y",
            "https://user:pw@github.com/a/b",
            "https://token@github.com/a/b",
            "ssh://git@github.com/a/b",
            "https://github.com",
            "not a url",
            "",
        ] {
            assert!(git_url(bad, false).is_err(), "{bad} accepted");
        }
        assert!(git_url("file:///srv/repo", true).is_ok());
    }

    #[test]
    fn branches() {
        for good in ["main", "feature/x", "v1.2", "release-2026"] {
            assert!(branch(good).is_ok(), "{good} refused");
        }
        for bad in [
            "", "-x", "a..b", "a b", "a~1", "a^", "a:b", "a?", "a*", "a[", "a\\b", "/a", "a/",
            "a//b", "a.", ".a", "a/.b", "a.lock", "@", "a@{1", "a\u{1}",
        ] {
            assert!(branch(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn env_keys_and_paths() {
        assert!(env_key("DATABASE_URL").is_ok());
        assert!(env_key("_x1").is_ok());
        for bad in ["", "1A", "A-B", "A B", "É"] {
            assert!(env_key(bad).is_err(), "{bad} accepted");
        }
        assert!(dockerfile_path("Dockerfile").is_ok());
        assert!(dockerfile_path("docker/prod.Dockerfile").is_ok());
        for bad in [
            "",
            "/etc/passwd",
            "../Dockerfile",
            "a/../../b",
            "a\\b",
            "C:x",
            "dir/",
        ] {
            assert!(dockerfile_path(bad).is_err(), "{bad} accepted");
        }
        assert!(health_path("/healthz").is_ok());
        assert!(health_path("healthz").is_err());
        assert!(domain("apps.example.com").is_ok());
        assert!(domain("bad_domain.com").is_err());
    }
}
