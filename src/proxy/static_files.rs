//! Static sites served by shard itself: files by path (MIME type, ETag, Range and conditional
//! requests by actix-files), `index.html` for directories, the top `index.html` for any other
//! path that does not look like a file (single-page apps route in the browser), and caching
//! by name: `immutable` for content-hashed asset names, `no-cache` for HTML.

use std::path::{Path, PathBuf};

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse};

use super::pages;
use super::table::Site;

pub async fn serve(req: &HttpRequest, site: &Site) -> HttpResponse {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return HttpResponse::MethodNotAllowed()
            .insert_header((header::ALLOW, "GET, HEAD"))
            .finish();
    }
    let Some(relative) = relative_path(req.path()) else {
        return pages::static_not_found();
    };
    let wants_dir = req.path().ends_with('/') || relative.as_os_str().is_empty();
    let candidate = site.root.join(&relative);
    let file = match kind(&candidate).await {
        Kind::File if !wants_dir => Some(candidate),
        Kind::Dir | Kind::File => {
            let index = candidate.join("index.html");
            (kind(&index).await == Kind::File).then_some(index)
        }
        Kind::Missing => None,
    };
    let file = match file {
        Some(file) => file,
        // A path that does not name a file is a route of a single-page app.
        None if !looks_like_file(&relative) => {
            let index = site.root.join("index.html");
            if kind(&index).await != Kind::File {
                return pages::static_not_found();
            }
            index
        }
        None => return pages::static_not_found(),
    };
    let named = match actix_files::NamedFile::open(&file) {
        Ok(named) => named,
        Err(_) => return pages::static_not_found(),
    };
    let mut response = named.into_response(req);
    if response.status() == StatusCode::OK || response.status() == StatusCode::NOT_MODIFIED {
        let policy = cache_policy(&file);
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static(policy));
    }
    response
}

#[derive(PartialEq, Eq)]
enum Kind {
    File,
    Dir,
    Missing,
}

/// What is at `path`, never following a link (the copied tree has none, but be sure).
async fn kind(path: &Path) -> Kind {
    match tokio::fs::symlink_metadata(path).await {
        Ok(m) if m.is_file() => Kind::File,
        Ok(m) if m.is_dir() => Kind::Dir,
        _ => Kind::Missing,
    }
}

/// The request path as a relative file path: percent-decoded, no `..`, no hidden files.
fn relative_path(path: &str) -> Option<PathBuf> {
    let decoded = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .ok()?;
    let mut out = PathBuf::new();
    for part in decoded.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            p if p.starts_with('.') || p.contains('\\') || p.contains('\0') => return None,
            p => out.push(p),
        }
    }
    Some(out)
}

/// `assets/app.js` looks like a file; `/about/team` looks like an app route.
fn looks_like_file(relative: &Path) -> bool {
    relative
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.contains('.'))
}

fn cache_policy(file: &Path) -> &'static str {
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if name.ends_with(".html") || name.ends_with(".htm") {
        "no-cache"
    } else if is_hashed(name) {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=300"
    }
}

/// A name with a content hash in it, as bundlers write them: `index-BxY7kL2q.js`,
/// `main.3f9a8c1b.css` (a part of 8+ letters and digits with at least one of each).
fn is_hashed(name: &str) -> bool {
    let stem = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
    stem.split(['.', '-', '~']).any(|part| {
        part.len() >= 8
            && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && part.bytes().any(|b| b.is_ascii_digit())
            && part.bytes().any(|b| b.is_ascii_alphabetic())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            relative_path("/a/b%20c.js"),
            Some(PathBuf::from("a/b c.js"))
        );
        assert_eq!(relative_path("/"), Some(PathBuf::new()));
        assert_eq!(relative_path("/a/../../etc/passwd"), None);
        assert_eq!(relative_path("/%2e%2e/etc/passwd"), None);
        assert_eq!(relative_path("/.env"), None);
        assert!(looks_like_file(Path::new("assets/app.js")));
        assert!(!looks_like_file(Path::new("about/team")));
    }

    #[test]
    fn hashed_names_are_immutable() {
        for name in [
            "index-BxY7kL2q.js",
            "main.3f9a8c1b.css",
            "chunk.a1b2c3d4e5.js",
        ] {
            assert!(is_hashed(name), "{name}");
        }
        for name in [
            "app.js",
            "jquery-3.7.1.min.js",
            "background-image.png",
            "favicon.ico",
        ] {
            assert!(!is_hashed(name), "{name}");
        }
        assert_eq!(cache_policy(Path::new("/s/index.html")), "no-cache");
    }
}
