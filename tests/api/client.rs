//! The `shard` command-line client against a real server: login (token and device style),
//! projects, deploy --follow to live in a pseudo-terminal, a failing deploy's exit code with
//! --json, env, logs, rollback, open, and errors in the API's words with their exit codes.

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::deploy::{app_files, dockerfile};
use crate::gitserver::GitServer;
use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_shard");

/// A client with its own config directory.
pub(crate) struct Client {
    home: tempfile::TempDir,
}

impl Client {
    pub(crate) fn new() -> Self {
        Client {
            home: tempfile::TempDir::new().unwrap(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join("config"))
            .args(args);
        command
    }

    /// Runs to the end with pipes: (exit code, stdout, stderr).
    pub(crate) async fn run(&self, args: &[&str]) -> (i32, String, String) {
        let mut command = self.command(args);
        let output = tokio::task::spawn_blocking(move || command.stdin(Stdio::null()).output())
            .await
            .unwrap()
            .unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    pub(crate) async fn login(&self, app: &TestApp, token: &str) {
        let (code, _, err) = self.run(&["login", &app.base, "--token", token]).await;
        assert_eq!(code, 0, "{err}");
    }
}

/// Runs `command` with a pseudo-terminal as its stdin, stdout and stderr (as in a shell
/// window): (exit status, everything it wrote).
async fn in_pty(mut command: Command) -> (ExitStatus, String) {
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    rustix::termios::tcsetwinsize(
        &master,
        rustix::termios::Winsize {
            ws_row: 40,
            ws_col: 120,
            ws_xpixel: 0,
            ws_ypixel: 0,
        },
    )
    .unwrap();
    let name = ptsname(&master, Vec::new()).unwrap();
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(name.to_str().unwrap())
        .unwrap();
    command
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave);
    let mut child = command.spawn().unwrap();
    // The terminal's other end closes when the child (the last holder) exits.
    drop(command);
    let mut master = std::fs::File::from(master);
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&out).into_owned()
    });
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    let output = tokio::task::spawn_blocking(move || reader.join().unwrap())
        .await
        .unwrap();
    (status, output)
}

pub(crate) async fn api_token(app: &TestApp, session: &Session, body: Value) -> String {
    let response = app.post("/api/v1/tokens", Some(&session.token), body).await;
    assert_eq!(response.status(), reqwest::StatusCode::CREATED);
    response.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn deploy_follow_reaches_live_in_a_terminal_and_a_failing_deploy_exits_1() {
    let app = spawn_app().await;
    let admin = app.setup_admin().await;
    let git = GitServer::start().await;
    let repo = git.repo(
        "cli-app",
        &app_files(
            "one",
            "RUN [\"/bin/busybox\", \"echo\", \"built-by-cli\"]\n",
        ),
    );
    let project = app.project_for(&admin, "cli-app", &repo.url).await;
    let client = Client::new();
    client
        .login(&app, &api_token(&app, &admin, json!({"name": "cli"})).await)
        .await;

    // The stored credentials are the user's alone.
    let file = client.home.path().join("config/shard/cli.toml");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // In a terminal: the build log streams and the deploy ends live, exit 0.
    let mut command = client.command(&["deploy", "cli-app", "--follow"]);
    command.env("TERM", "xterm-256color");
    let (status, output) = in_pty(command).await;
    assert!(status.success(), "exit {status}: {output}");
    // On a terminal a spinner shows the step and the time (set by indicatif on stderr).
    assert!(
        output.contains("building ["),
        "the progress display: {output}"
    );
    assert!(
        output.contains("built-by-cli"),
        "the build log streamed: {output}"
    );
    assert!(output.contains("live at http://cli-app."), "{output}");

    // Projects, as a table and as JSON.
    let (code, out, _) = client.run(&["projects"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("cli-app") && out.contains("live"), "{out}");
    let (_, out, _) = client.run(&["projects", "--json"]).await;
    let list: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list[0]["id"], project.as_str());

    // A failing build: exit 1, and with --json one event per line then the outcome.
    repo.commit(
        &[(
            "Dockerfile",
            dockerfile("RUN [\"/bin/busybox\", \"false\"]\n"),
            false,
        )],
        "broken",
    );
    let (code, out, err) = client
        .run(&["deploy", "cli-app", "--follow", "--json"])
        .await;
    assert_eq!(code, 1, "{out}\n{err}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let last = lines.last().unwrap();
    assert_eq!(last["status"], "failed", "{last}");
    assert!(last["error"].as_str().unwrap().contains("false"), "{last}");
    assert!(
        lines.iter().any(|e| e["type"] == "log"),
        "log events in the stream"
    );
    let seqs: Vec<i64> = lines.iter().filter_map(|e| e["seq"].as_i64()).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "no gap, no repeat: {seqs:?}"
    );
    assert!(err.contains("failed"), "{err}");

    // Roll back to the first deployment (the default target): live again, exit 0.
    repo.commit(&[("Dockerfile", dockerfile(""), false)], "fixed");
    let (code, _, err) = client.run(&["deploy", "cli-app", "--follow"]).await;
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = client
        .run(&["rollback", "cli-app", "--follow", "--json"])
        .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().last().unwrap().contains("\"live\""), "{out}");

    // Without --follow: the queued deployment, at once.
    let (code, out, _) = client.run(&["deploy", "cli-app", "--json"]).await;
    assert_eq!(code, 0);
    let queued: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(queued["status"], "queued");
    app.wait_for(
        &admin,
        queued["id"].as_str().unwrap(),
        &["live", "failed"],
        Duration::from_secs(120),
    )
    .await;

    // Runtime logs: busybox httpd prints nothing, so the app writes nothing; the command ends.
    let (code, _, err) = client.run(&["logs", "cli-app"]).await;
    assert_eq!(code, 0, "{err}");

    // open prints the URL.
    let (code, out, _) = client.run(&["open", "cli-app"]).await;
    assert_eq!(code, 0);
    assert!(out.trim().starts_with("http://cli-app."), "{out}");
}

#[tokio::test]
async fn env_errors_and_exit_codes_speak_the_apis_words() {
    let app = spawn_app().await;
    let admin = app.setup_admin().await;
    app.create_project(&admin, "envy").await;
    let client = Client::new();

    // Not logged in: exit 4, says what to do.
    let (code, _, err) = client.run(&["projects"]).await;
    assert_eq!(code, 4);
    assert!(err.contains("shard login"), "{err}");
    // A wrong token is refused at login, nothing stored.
    let (code, _, err) = client
        .run(&["login", &app.base, "--token", "shard_nope"])
        .await;
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("invalid or expired token"), "{err}");
    // Bad usage is clap's 2.
    let (code, _, _) = client.run(&["deploy"]).await;
    assert_eq!(code, 2);

    client
        .login(&app, &api_token(&app, &admin, json!({"name": "cli"})).await)
        .await;
    let (code, _, err) = client
        .run(&["env", "set", "envy", "GREETING=hello world", "PORT_HINT=1"])
        .await;
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = client
        .run(&["env", "set", "envy", "API_KEY=s3cret", "--secret"])
        .await;
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = client.run(&["env", "list", "envy"]).await;
    assert!(
        out.contains("GREETING=hello world") && out.contains("API_KEY=(secret)"),
        "{out}"
    );
    assert!(!out.contains("s3cret"));
    // Setting another keeps the secret's stored value.
    client.run(&["env", "set", "envy", "OTHER=1"]).await;
    let (code, _, _) = client.run(&["env", "unset", "envy", "PORT_HINT"]).await;
    assert_eq!(code, 0);
    let (_, out, _) = client.run(&["env", "list", "envy", "--json"]).await;
    let vars: Value = serde_json::from_str(&out).unwrap();
    let keys: Vec<&str> = vars["vars"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert!(keys.contains(&"API_KEY") && !keys.contains(&"PORT_HINT"));
    let (code, _, err) = client.run(&["env", "unset", "envy", "MISSING"]).await;
    assert_eq!(code, 3);
    assert!(err.contains("MISSING"), "{err}");
    // The server's 422 in its words.
    let (code, _, err) = client.run(&["env", "set", "envy", "1BAD=x"]).await;
    assert_eq!(code, 3);
    assert!(err.contains("vars[") && err.contains("key"), "{err}");
    let (code, _, err) = client.run(&["env", "set", "envy", "NOEQUALS"]).await;
    assert_eq!(code, 2, "{err}");
    // An unknown project; with --json the error is a JSON document too.
    let (code, out, err) = client.run(&["deploy", "nothing-here", "--json"]).await;
    assert_eq!(code, 3);
    assert!(err.contains("no project 'nothing-here'"), "{err}");
    let body: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    // A read token cannot deploy: 403 in words, exit 3.
    let reader = Client::new();
    reader
        .login(
            &app,
            &api_token(&app, &admin, json!({"name": "ro", "scope": "read"})).await,
        )
        .await;
    let (code, _, err) = reader.run(&["deploy", "envy"]).await;
    assert_eq!(code, 3);
    assert!(err.contains("scope is 'read'"), "{err}");
    // A server that is gone: exit 4.
    let gone = Client::new();
    gone.login(
        &app,
        &api_token(&app, &admin, json!({"name": "gone"})).await,
    )
    .await;
    let path = gone.home.path().join("config/shard/cli.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(&app.base, "http://127.0.0.1:9");
    std::fs::write(&path, text).unwrap();
    let (code, _, err) = gone.run(&["projects"]).await;
    assert_eq!(code, 4);
    assert!(err.contains("cannot reach"), "{err}");
}

#[tokio::test]
async fn device_login_is_approved_on_the_dashboard_once() {
    let app = spawn_app().await;
    let admin = app.setup_admin().await;
    let member = app.member(&admin, "dev").await;
    app.create_project(&member, "devs-app").await;
    let client = Client::new();
    let mut child = tokio::process::Command::from(client.command(&["login", &app.base]))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // The code is printed; the member approves it.
    use tokio::io::AsyncBufReadExt;
    let mut err = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), err.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let code = line.rsplit(' ').next().unwrap().to_string();
    // The code is typed on the page, not carried by the link.
    assert!(line.contains("/cli and enter the code"), "{line}");
    let shown: Value = app
        .get(&format!("/api/v1/cli/logins/{code}"), Some(&member.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown["code"], code.as_str());
    let approved = app
        .post(
            &format!("/api/v1/cli/logins/{code}/approve"),
            Some(&member.token),
            json!({}),
        )
        .await;
    assert_eq!(approved.status(), reqwest::StatusCode::NO_CONTENT);
    let again = app
        .post(
            &format!("/api/v1/cli/logins/{code}/approve"),
            Some(&member.token),
            json!({}),
        )
        .await;
    assert_eq!(again.status(), reqwest::StatusCode::NOT_FOUND);
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    // Signed in as the approver: their projects.
    let (code, out, _) = client.run(&["projects"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("devs-app"), "{out}");
    let tokens: Value = app
        .get("/api/v1/tokens", Some(&member.token))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        tokens[0]["name"].as_str().unwrap().starts_with("CLI: "),
        "{tokens}"
    );
}
