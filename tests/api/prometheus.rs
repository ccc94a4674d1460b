//! `GET /metrics`: the text exposition read by a strict parser of the Prometheus text format
//! 0.0.4 (every sample of a declared family, label syntax and escapes, histogram buckets
//! cumulative up to `+Inf` = `_count`, no duplicate series), carrying the series shard
//! promises after real traffic: API requests, a deploy and its steps, proxy requests and
//! upstream latency, queue depth and hub subscribers; and who may scrape it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::deploy::app_files;
use crate::gitserver::GitServer;
use crate::helpers::*;

#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn is_name(s: &str, colon: bool) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':'))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':'))
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse().map_err(|_| format!("bad value {s:?}")),
    }
}

/// `{a="x",b="y"}` → labels, and the rest of the line.
fn parse_labels(s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut rest = s.strip_prefix('{').ok_or("labels must start with {")?;
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = rest.find('=').ok_or("label without =")?;
        let name = &rest[..eq];
        if !is_name(name, false) {
            return Err(format!("bad label name {name:?}"));
        }
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .ok_or("label value must be quoted")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next().ok_or("unterminated label value")? {
                (i, '"') => break i,
                (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    'n' => value.push('\n'),
                    c => return Err(format!("bad escape \\{c}")),
                },
                (_, '\n') => return Err("newline in a label value".into()),
                (_, c) => value.push(c),
            }
        };
        if labels.insert(name.to_string(), value).is_some() {
            return Err(format!("label {name} twice"));
        }
        rest = &rest[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

/// Parses the whole exposition strictly; returns families by name (with their type) and samples.
fn parse(text: &str) -> Result<(HashMap<String, String>, Vec<Sample>), String> {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut helped = HashSet::new();
    let mut samples = Vec::new();
    let mut seen = HashSet::new();
    if !text.ends_with('\n') {
        return Err("the exposition must end with a newline".into());
    }
    for (n, line) in text.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let parts: Vec<&str> = comment.trim_start().splitn(3, ' ').collect();
            match parts.as_slice() {
                ["TYPE", name, kind] => {
                    if !is_name(name, true) {
                        return Err(at("bad family name".into()));
                    }
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(kind) {
                        return Err(at(format!("unknown type {kind}")));
                    }
                    if types.insert(name.to_string(), kind.to_string()).is_some() {
                        return Err(at("TYPE given twice".into()));
                    }
                }
                ["HELP", name, ..] if !helped.insert(name.to_string()) => {
                    return Err(at("HELP given twice".into()));
                }
                _ => {}
            }
            continue;
        }
        let name_end = line.find(['{', ' ']).ok_or_else(|| at("no value".into()))?;
        let name = &line[..name_end];
        if !is_name(name, true) {
            return Err(at("bad metric name".into()));
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).map_err(at)?
        } else {
            (BTreeMap::new(), &line[name_end..])
        };
        let fields: Vec<&str> = rest.trim_start_matches(' ').split(' ').collect();
        if fields.is_empty() || fields.len() > 2 || !rest.starts_with(' ') {
            return Err(at("expected ' value [timestamp]'".into()));
        }
        let value = parse_value(fields[0]).map_err(at)?;
        if let Some(ts) = fields.get(1) {
            ts.parse::<i64>().map_err(|_| at("bad timestamp".into()))?;
        }
        let family = types
            .keys()
            .find(|f| {
                name == f.as_str()
                    || (types[*f] == "histogram"
                        && ["_bucket", "_sum", "_count"]
                            .iter()
                            .any(|s| name == format!("{f}{s}")))
            })
            .ok_or_else(|| at("a sample of no declared family".into()))?;
        if types[family] == "histogram" && name.ends_with("_bucket") && !labels.contains_key("le") {
            return Err(at("a bucket without le".into()));
        }
        if types[family] == "counter" && value < 0.0 {
            return Err(at("a negative counter".into()));
        }
        if !seen.insert(format!("{name}{labels:?}")) {
            return Err(at("a duplicate series".into()));
        }
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    // Histograms: buckets never decrease, and +Inf equals _count.
    for (family, kind) in &types {
        if kind != "histogram" {
            continue;
        }
        let mut series: HashMap<BTreeMap<String, String>, Vec<(f64, f64)>> = HashMap::new();
        for s in samples
            .iter()
            .filter(|s| s.name == format!("{family}_bucket"))
        {
            let mut key = s.labels.clone();
            let le = parse_value(&key.remove("le").unwrap())?;
            series.entry(key).or_default().push((le, s.value));
        }
        for (key, mut buckets) in series {
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            if !buckets.windows(2).all(|w| w[0].1 <= w[1].1) {
                return Err(format!("{family}{key:?}: buckets decrease"));
            }
            let inf = buckets
                .last()
                .filter(|b| b.0.is_infinite())
                .ok_or(format!("{family}: no +Inf bucket"))?;
            let count = samples
                .iter()
                .find(|s| s.name == format!("{family}_count") && s.labels == key)
                .ok_or(format!("{family}: no _count"))?;
            if count.value != inf.1 {
                return Err(format!(
                    "{family}{key:?}: +Inf {} != count {}",
                    inf.1, count.value
                ));
            }
        }
    }
    Ok((types, samples))
}

fn find<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
    samples.iter().find(|s| {
        s.name == name
            && labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
    })
}

#[test]
fn the_parser_refuses_what_the_format_does_not_allow() {
    let good = "# TYPE a counter\na_total 1\n";
    assert!(parse("# TYPE a_total counter\na_total 1\n").is_ok());
    assert!(parse(good).is_err(), "a sample of an undeclared family");
    for bad in [
        "# TYPE a counter\na{x=\"1\"} 1",
        "# TYPE a gauge\na{x=1} 1\n",
        "# TYPE a gauge\na{x=\"\\q\"} 1\n",
        "# TYPE a gauge\na 1\na 2\n",
        "# TYPE a gauge\na one\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\nh_sum 0\n",
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_count 1\nh_sum 0\n",
    ] {
        assert!(parse(bad).is_err(), "{bad:?}");
    }
}

#[tokio::test]
async fn the_exposition_parses_strictly_and_has_the_promised_series() {
    let app = spawn_app_with(|c| c.deploy.grace_secs = 0).await;
    let admin = app.setup_admin().await;
    let git = GitServer::start().await;
    let repo = git.repo("scraped", &app_files("1", ""));
    let project = app.project_for(&admin, "scraped", &repo.url).await;
    let id = app.deploy(&admin, &project, json!({})).await;
    let live = app
        .wait_for(&admin, &id, FINAL, Duration::from_secs(120))
        .await;
    assert_eq!(live["status"], "live", "{live}");
    for _ in 0..3 {
        let page = crate::proxy::get_host(&app, "scraped.localhost", "/").await;
        assert_eq!(page.status(), StatusCode::OK);
    }
    let missing = app
        .get(
            &format!("/api/v1/projects/{}", uuid::Uuid::new_v4()),
            Some(&admin.token),
        )
        .await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    // The deploy's outcome is counted when its log records the status, a moment after the
    // REST read above saw it live: wait (≤ 5 s) for that, then read once more and check it all.
    let counted = Instant::now() + Duration::from_secs(5);
    while !app
        .get("/metrics", None)
        .await
        .text()
        .await
        .unwrap()
        .contains("shard_deploys_total{outcome=\"live\"} 1")
    {
        assert!(Instant::now() < counted, "the live deploy never counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let response = app.get("/metrics", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    let (types, samples) = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    for (family, kind) in [
        ("shard_http_requests_total", "counter"),
        ("shard_deploys_total", "counter"),
        ("shard_deploy_step_duration_seconds", "histogram"),
        ("shard_proxy_requests_total", "counter"),
        ("shard_proxy_upstream_latency_seconds", "histogram"),
        ("shard_queue_depth", "gauge"),
        ("shard_hub_subscribers", "gauge"),
    ] {
        assert_eq!(
            types.get(family).map(String::as_str),
            Some(kind),
            "{family}\n{text}"
        );
    }
    let route = find(
        &samples,
        "shard_http_requests_total",
        &[
            ("route", "/api/v1/projects/{id}"),
            ("method", "GET"),
            ("status", "404"),
        ],
    );
    assert!(route.is_some_and(|s| s.value >= 1.0), "{text}");
    assert_eq!(
        find(&samples, "shard_deploys_total", &[("outcome", "live")]).map(|s| s.value),
        Some(1.0),
        "{text}"
    );
    for step in ["fetch", "build", "start", "health_check"] {
        let count = find(
            &samples,
            "shard_deploy_step_duration_seconds_count",
            &[("step", step)],
        );
        assert_eq!(count.map(|s| s.value), Some(1.0), "{step}\n{text}");
    }
    let proxied = find(
        &samples,
        "shard_proxy_requests_total",
        &[("project", &project), ("status", "200")],
    );
    assert_eq!(proxied.map(|s| s.value), Some(3.0), "{text}");
    let latency = find(
        &samples,
        "shard_proxy_upstream_latency_seconds_count",
        &[("project", &project)],
    );
    assert_eq!(latency.map(|s| s.value), Some(3.0), "{text}");
    assert!(find(&samples, "shard_queue_depth", &[]).is_some());
}

#[tokio::test]
async fn with_a_token_configured_scrapes_must_send_it() {
    let app = spawn_app_with(|c| {
        c.metrics.token = Some(shard::config::Secret::new("scrape-token-0123456789"));
    })
    .await;
    let without = app.get("/metrics", None).await;
    assert_error(without, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let wrong = app.get("/metrics", Some("scrape-token-wrong")).await;
    assert_error(wrong, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let right = app.get("/metrics", Some("scrape-token-0123456789")).await;
    assert_eq!(right.status(), StatusCode::OK);
    assert!(
        right
            .text()
            .await
            .unwrap()
            .contains("# TYPE shard_queue_depth gauge")
    );
}

/// Background loops run under the supervisor: a loop that fails is started again, and its
/// restarts show in `/system/overview` and on `/metrics`.
#[tokio::test]
async fn a_failing_background_loop_is_restarted_and_counted() {
    let app = crate::helpers::spawn_app().await;
    let admin = app.setup_admin().await;
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counter = runs.clone();
    app.state.supervisor.spawn("test-flaky", move || {
        let run = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        async move {
            if run < 2 {
                anyhow::bail!("run {run} fails on purpose");
            }
            std::future::pending::<()>().await;
            Ok(())
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let task = loop {
        let overview: serde_json::Value = app
            .get("/api/v1/system/overview", Some(&admin.token))
            .await
            .json()
            .await
            .unwrap();
        let tasks = overview["tasks"].as_array().unwrap().clone();
        // The real loops are there too (and the leader campaign and relay on Postgres).
        let postgres = std::env::var("SHARD_TEST_DATABASE_URL").is_ok();
        let shared = ["leader", "relay-listen", "relay-send", "route-follower"];
        for name in [
            "watchdog",
            "docker-events",
            "metrics-collector",
            "system-heartbeat",
            "sweep",
            "job-workers",
            "commit-statuses",
        ]
        .into_iter()
        .chain(shared.into_iter().filter(|_| postgres))
        {
            assert!(
                tasks.iter().any(|t| t["name"] == name),
                "{name}: {overview}"
            );
        }
        let task = tasks
            .iter()
            .find(|t| t["name"] == "test-flaky")
            .unwrap()
            .clone();
        if task["restarts"] == 2 && task["status"] == "running" {
            break task;
        }
        assert!(std::time::Instant::now() < deadline, "{task}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(
        task["last_error"]
            .as_str()
            .unwrap()
            .contains("fails on purpose"),
        "{task}"
    );
    let text = app.get("/metrics", None).await.text().await.unwrap();
    assert!(
        text.contains("shard_task_restarts_total{task=\"test-flaky\"} 2"),
        "{text}"
    );
}
