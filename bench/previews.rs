//! Preview benchmark (issue 28): a pull request opened → its preview answering at
//! `pr-<n>-<slug>`, against a production deploy of the same commit → the app answering at its
//! host, in the same run. Rounds alternate which goes first (the second one finds the layers
//! of the first in the cache), each round on a new commit. Run: `bench/run-previews`.

#[path = "app.rs"]
mod app;
#[path = "../tests/api/gitserver.rs"]
mod gitserver;

use std::time::{Duration, Instant};

use shard::db;
use shard::deploy::Pushed;

const ROUNDS: u32 = 6;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Waits until `host` answers 200 with `body` through shard's proxy.
async fn until_answers(port: u16, host: &str, body: &str) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}/"))
            .header("host", host)
            .send()
            .await
            && r.status() == 200
            && r.text().await.unwrap_or_default() == body
        {
            return;
        }
        assert!(Instant::now() < deadline, "{host} never answered {body:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::main]
async fn main() {
    let (state, _dir, admin) = app::start(|_| {}).await;
    let port = state.port;
    let git = gitserver::GitServer::start().await;
    let repo = git.repo("bench", &app::files("0"));
    let project = db::projects::insert(
        &state.db,
        admin,
        db::projects::Settings::new("bench", &repo.url).set_by_admin(),
    )
    .await
    .unwrap();
    let project = db::previews::set_settings(&state.db, project, true, 7, 20)
        .await
        .unwrap();
    let (mut previews, mut production) = (Vec::new(), Vec::new());
    for round in 1..=ROUNDS {
        let stamp = format!("round-{round}-{}", uuid::Uuid::new_v4().simple());
        let sha = repo.commit_pull(round, &app::files(&stamp), "bench round");
        let body = format!("stamp {stamp}\n");
        let preview = async {
            let started = Instant::now();
            let pr = db::previews::PullRequest {
                number: round as i32,
                title: "bench".into(),
                author: None,
                head_sha: sha.clone(),
                head_ref: format!("pr-{round}"),
                head_repo: "bench/bench".into(),
                fork: false,
            };
            state
                .previews
                .on_pull_request(&project, "opened", pr)
                .await
                .unwrap();
            let host = format!(
                "{}.localhost",
                shard::previews::child_slug(round as i32, &project.slug)
            );
            until_answers(port, &host, &body).await;
            started.elapsed().as_secs_f64()
        };
        let prod = async {
            let started = Instant::now();
            let pushed = Pushed {
                commit_sha: sha.clone(),
                message: None,
                pusher: None,
            };
            state.deployer.request_push(&project, pushed).await.unwrap();
            until_answers(port, &format!("{}.localhost", project.slug), &body).await;
            started.elapsed().as_secs_f64()
        };
        if round % 2 == 1 {
            previews.push(preview.await);
            production.push(prod.await);
        } else {
            production.push(prod.await);
            previews.push(preview.await);
        }
    }
    let (p, d) = (median(previews.clone()), median(production.clone()));
    println!(
        "\n| same commit, request → answering (median of {ROUNDS}, order alternated) | seconds |"
    );
    println!("|---|---|");
    println!("| pull request opened → preview answering | {p:.2} |");
    println!("| production deploy → app answering | {d:.2} |");
    println!("\npreview / production: {:.2}× (goal ≤ 1.1×)", p / d);
    println!("samples: previews {previews:.2?}, production {production:.2?}");
    let _ = state.deployer.delete_project(&project).await;
}
