//! WebSocket viewers of one deployment's build log, for `bench/run-day` (the "a long log
//! followed by N viewers" stage). Each viewer authenticates with a token, subscribes with
//! `since=0` and reads until the deployment's final status; it checks that the seqs it saw are
//! 1, 2, 3… without a gap.
//!
//! `viewers WS_URL TOKEN DEPLOYMENT_ID COUNT` prints one line: `viewers=N lines=L gaps=G secs=S`
//! (L is the smallest count any viewer saw). Exit code 1 on a gap or a viewer that did not end.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

/// Every `"seq":N` of a message and whether it carries a final status.
fn seqs(text: &str) -> (Vec<i64>, bool) {
    let seqs = text
        .split("\"seq\":")
        .skip(1)
        .filter_map(|part| part.split([',', '}']).next()?.parse().ok())
        .collect();
    let done = ["\"live\"", "\"failed\"", "\"cancelled\""]
        .iter()
        .any(|s| text.contains(&format!("\"status\":{s}")));
    (seqs, done)
}

async fn viewer(url: String, token: String, topic: String) -> Result<(u64, u64), String> {
    let (mut ws, _) = tokio_tungstenite::connect_async(&url)
        .await
        .map_err(|e| e.to_string())?;
    for op in [
        format!("{{\"op\":\"auth\",\"token\":\"{token}\"}}"),
        format!("{{\"op\":\"subscribe\",\"topic\":\"{topic}\",\"since\":0}}"),
    ] {
        ws.send(Message::Text(op.into()))
            .await
            .map_err(|e| e.to_string())?;
    }
    let (mut last, mut gaps) = (0i64, 0u64);
    while let Some(message) = ws.next().await {
        let Message::Text(text) = message.map_err(|e| e.to_string())? else {
            continue;
        };
        if !text.contains(&topic) {
            continue;
        }
        let (seqs, done) = seqs(&text);
        for seq in seqs {
            if seq <= last {
                continue;
            }
            if seq != last + 1 {
                gaps += 1;
            }
            last = seq;
        }
        if done {
            return Ok((last as u64, gaps));
        }
    }
    Err(format!("the connection ended at seq {last}"))
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, token, deployment, count] = args.as_slice() else {
        eprintln!("usage: viewers WS_URL TOKEN DEPLOYMENT_ID COUNT");
        std::process::exit(2);
    };
    let count: usize = count.parse().expect("COUNT");
    let topic = format!("deployment:{deployment}");
    let started = Instant::now();
    let tasks: Vec<_> = (0..count)
        .map(|_| tokio::spawn(viewer(url.clone(), token.clone(), topic.clone())))
        .collect();
    let (mut lines, mut gaps, mut failed) = (u64::MAX, 0, 0);
    for task in tasks {
        match tokio::time::timeout(Duration::from_secs(1800), task).await {
            Ok(Ok(Ok((seen, g)))) => {
                lines = lines.min(seen);
                gaps += g;
            }
            Ok(Ok(Err(e))) => {
                eprintln!("viewer: {e}");
                failed += 1;
            }
            _ => failed += 1,
        }
    }
    println!(
        "viewers={count} lines={} gaps={gaps} failed={failed} secs={:.1}",
        if lines == u64::MAX { 0 } else { lines },
        started.elapsed().as_secs_f64()
    );
    if gaps > 0 || failed > 0 {
        std::process::exit(1);
    }
}
