//! A test git server: `git http-backend` (smart HTTP, protocol v2) behind a small actix CGI
//! bridge on 127.0.0.1, serving bare repositories the test builds with the git CLI.

use std::path::{Path, PathBuf};
use std::process::Command;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use tokio::io::AsyncWriteExt;

pub struct GitServer {
    pub base: String,
    root: PathBuf,
    _dir: tempfile::TempDir,
}

/// A working copy whose commits are pushed to the server's bare repository.
pub struct Repo {
    pub url: String,
    work: PathBuf,
    bare: PathBuf,
}

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args([
            "-c",
            "user.name=shard-test",
            "-c",
            "user.email=test@shard.invalid",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_COUNT", "1")
        .env("GIT_CONFIG_KEY_0", "safe.directory")
        .env("GIT_CONFIG_VALUE_0", "*")
        .output()
        .expect("git is installed");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

impl GitServer {
    pub async fn start() -> GitServer {
        Self::start_with_auth(None).await
    }

    /// A server that answers 401 unless the request carries `Authorization: <required>`.
    pub async fn start_with_auth(required: Option<String>) -> GitServer {
        let dir = tempfile::TempDir::new().unwrap();
        let root = dir.path().join("repos");
        std::fs::create_dir_all(&root).unwrap();
        let data = web::Data::new(root.clone());
        let auth = web::Data::new(RequiredAuth(required));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(auth.clone())
                .default_service(web::to(cgi))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        GitServer {
            base: format!("http://127.0.0.1:{port}"),
            root,
            _dir: dir,
        }
    }

    /// Creates `name.git` from the files given (path, contents, executable).
    pub fn repo(&self, name: &str, files: &[(&str, Vec<u8>, bool)]) -> Repo {
        let work = self.root.parent().unwrap().join(format!("work-{name}"));
        std::fs::create_dir_all(&work).unwrap();
        git(&work, &["init", "-q", "-b", "main"]);
        let bare = self.root.join(format!("{name}.git"));
        let repo = Repo {
            url: format!("{}/{name}.git", self.base),
            work,
            bare,
        };
        repo.commit(files, "first");
        git(
            self.root.as_path(),
            &[
                "clone",
                "-q",
                "--bare",
                repo.work.to_str().unwrap(),
                repo.bare.to_str().unwrap(),
            ],
        );
        repo
    }
}

impl Repo {
    /// Writes the files, commits and pushes (when the bare repository exists); returns the SHA.
    pub fn commit(&self, files: &[(&str, Vec<u8>, bool)], message: &str) -> String {
        for (path, contents, executable) in files {
            let path = self.work.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, contents).unwrap();
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = if *executable { 0o755 } else { 0o644 };
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            }
        }
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "-q", "-m", message]);
        if self.bare.exists() {
            git(
                &self.work,
                &["push", "-q", self.bare.to_str().unwrap(), "main"],
            );
        }
        git(&self.work, &["rev-parse", "HEAD"])
    }
}

impl Repo {
    /// Commits `files` on the pull request `number`'s branch (from `main` the first time) and
    /// pushes it to `refs/pull/<number>/head`, as GitHub keeps a pull request's head in the
    /// base repository; returns the SHA. The work tree is left on `main`.
    #[allow(dead_code)] // the benchmarks share this file
    pub fn commit_pull(
        &self,
        number: u32,
        files: &[(&str, Vec<u8>, bool)],
        message: &str,
    ) -> String {
        let branch = format!("pr-{number}");
        let exists = std::process::Command::new("git")
            .args(["rev-parse", "--verify", "-q", &branch])
            .current_dir(&self.work)
            .output()
            .unwrap()
            .status
            .success();
        if exists {
            git(&self.work, &["checkout", "-q", &branch]);
        } else {
            git(&self.work, &["checkout", "-q", "-b", &branch, "main"]);
        }
        for (path, contents, executable) in files {
            let path = self.work.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, contents).unwrap();
            use std::os::unix::fs::PermissionsExt;
            let mode = if *executable { 0o755 } else { 0o644 };
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "-q", "-m", message]);
        let target = format!("HEAD:refs/pull/{number}/head");
        git(
            &self.work,
            &["push", "-q", "-f", self.bare.to_str().unwrap(), &target],
        );
        let sha = git(&self.work, &["rev-parse", "HEAD"]);
        git(&self.work, &["checkout", "-q", "main"]);
        sha
    }

    /// Commits a checkout bomb with git's plumbing: one blob of `blob_bytes` zeros named
    /// `copies` times in one tree (tiny to store and fetch, `copies × blob_bytes` on disk), plus
    /// `files` as usual; pushes it and returns the SHA. Nothing of that size is written here.
    #[allow(dead_code)] // the benchmarks share this file
    pub fn commit_bomb(&self, copies: usize, blob_bytes: usize) -> String {
        let blob_file = self.work.join("bomb.blob");
        std::fs::write(&blob_file, vec![0u8; blob_bytes]).unwrap();
        let blob = git(&self.work, &["hash-object", "-w", "bomb.blob"]);
        std::fs::remove_file(&blob_file).unwrap();
        let listing: String = (0..copies)
            .map(|i| format!("100644 blob {blob}\tcopy-{i:06}\n"))
            .collect();
        let listing_file = self.work.join("bomb.tree");
        std::fs::write(&listing_file, listing).unwrap();
        let output = Command::new("sh")
            .arg("-c")
            .arg("git mktree < bomb.tree")
            .current_dir(&self.work)
            .env("GIT_CONFIG_COUNT", "1")
            .env("GIT_CONFIG_KEY_0", "safe.directory")
            .env("GIT_CONFIG_VALUE_0", "*")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::fs::remove_file(&listing_file).unwrap();
        let inner = String::from_utf8_lossy(&output.stdout).trim().to_string();
        // The bomb sits in a directory beside the commit's other files.
        git(&self.work, &["read-tree", "HEAD"]);
        git(&self.work, &["read-tree", "--prefix=bomb/", &inner]);
        let tree = git(&self.work, &["write-tree"]);
        let commit = git(
            &self.work,
            &["commit-tree", &tree, "-p", "HEAD", "-m", "bomb"],
        );
        git(&self.work, &["update-ref", "refs/heads/main", &commit]);
        git(
            &self.work,
            &["push", "-q", "-f", self.bare.to_str().unwrap(), "main"],
        );
        commit
    }
}

impl Repo {
    /// Commits `count` files of `bytes` bytes each under `large/` (each different from the
    /// others in its first bytes), written one at a time so the caller never holds them; pushes
    /// and returns the SHA.
    #[allow(dead_code)] // the benchmarks share this file
    pub fn commit_large(&self, count: usize, bytes: usize) -> String {
        let dir = self.work.join("large");
        std::fs::create_dir_all(&dir).unwrap();
        let mut data = vec![0u8; bytes];
        for i in 0..count {
            data[..8].copy_from_slice(&(i as u64).to_le_bytes());
            std::fs::write(dir.join(format!("{i:05}")), &data).unwrap();
        }
        drop(data);
        self.commit(&[], "large files")
    }
}

struct RequiredAuth(Option<String>);

async fn cgi(
    req: HttpRequest,
    body: web::Bytes,
    root: web::Data<PathBuf>,
    auth: web::Data<RequiredAuth>,
) -> HttpResponse {
    if let Some(required) = &auth.0 {
        let given = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        if given != Some(required.as_str()) {
            return HttpResponse::Unauthorized()
                .insert_header(("WWW-Authenticate", "Basic realm=\"git\""))
                .finish();
        }
    }
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let mut command = tokio::process::Command::new("git");
    command
        .arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", root.as_path())
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GIT_CONFIG_COUNT", "1")
        .env("GIT_CONFIG_KEY_0", "safe.directory")
        .env("GIT_CONFIG_VALUE_0", "*")
        .env("PATH_INFO", req.path())
        .env("QUERY_STRING", req.query_string())
        .env("REQUEST_METHOD", req.method().as_str())
        .env("CONTENT_TYPE", header("content-type"))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("GIT_PROTOCOL", header("git-protocol"))
        .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = command.spawn().expect("git http-backend runs");
    let mut stdin = child.stdin.take().unwrap();
    let write = async move {
        let _ = stdin.write_all(&body).await;
        drop(stdin);
    };
    let (_, output) = tokio::join!(write, child.wait_with_output());
    let output = output.unwrap().stdout;
    let split = output
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| output.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let Some((end, sep)) = split else {
        return HttpResponse::BadGateway().finish();
    };
    let mut response = HttpResponse::Ok();
    for line in String::from_utf8_lossy(&output[..end]).lines() {
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("status") {
                let code: u16 = value
                    .split_whitespace()
                    .next()
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(500);
                response.status(actix_web::http::StatusCode::from_u16(code).unwrap());
            } else {
                response.insert_header((name.trim().to_string(), value.to_string()));
            }
        }
    }
    response.body(output[end + sep..].to_vec())
}

impl Repo {
    /// Commits a symbolic link `path` → `target` (git stores the link, not the file).
    #[allow(dead_code)] // the deploy benchmark shares this file
    pub fn symlink(&self, path: &str, target: &str, message: &str) -> String {
        let link = self.work.join(path);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(target, &link).unwrap();
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "-q", "-m", message]);
        git(
            &self.work,
            &["push", "-q", self.bare.to_str().unwrap(), "main"],
        );
        git(&self.work, &["rev-parse", "HEAD"])
    }
}
