//! The health gate: a fresh container must answer `GET <health_path>` with 2xx/3xx within
//! the project's timeout; it fails early (with the container's last output) when the container
//! exits or disappears.

use std::time::{Duration, Instant};

use super::log::TAIL_LINES;
use super::pipeline::{Pipeline, Stop, failed};

impl Pipeline {
    pub(super) async fn exited_message(&self, what: &str) -> String {
        let lines = match &self.container {
            Some(id) => self
                .d
                .docker
                .tail_logs(id, TAIL_LINES)
                .await
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let mut text = what.to_string();
        if !lines.is_empty() {
            text.push_str("\n--- container output ---\n");
            text.push_str(&self.log.masked(&lines.join("\n")));
        }
        text
    }

    pub(super) async fn health_check(&mut self) -> Result<(), Stop> {
        let upstream = self.deployment.upstream.clone().unwrap_or_default();
        let url = format!("http://{upstream}{}", self.project.health_path);
        let timeout = Duration::from_secs(self.project.health_timeout_secs.max(1) as u64);
        self.log
            .system(format!(
                "==> Health check GET {} (up to {} s)",
                self.project.health_path,
                timeout.as_secs()
            ))
            .await;
        let deadline = Instant::now() + timeout;
        let container = self.container.clone().unwrap_or_default();
        let mut last_problem;
        loop {
            if self.cancel.is_cancelled() {
                return Err(Stop::Cancelled);
            }
            let request = self.d.http.get(&url).timeout(Duration::from_secs(2));
            match request.send().await {
                Ok(response)
                    if response.status().is_success() || response.status().is_redirection() =>
                {
                    return Ok(());
                }
                Ok(response) => last_problem = format!("answered {}", response.status()),
                Err(e) => {
                    last_problem = format!(
                        "no answer ({})",
                        if e.is_timeout() {
                            "timeout"
                        } else {
                            "connection refused or reset"
                        }
                    )
                }
            }
            match self.d.docker.container_status(&container).await {
                Ok(Some(status)) if !status.running => {
                    let what = format!(
                        "the container exited (code {}) before it became healthy",
                        status.exit_code.unwrap_or(-1)
                    );
                    return Err(failed("health_check", self.exited_message(&what).await));
                }
                Ok(None) => return Err(failed("health_check", "the container disappeared")),
                _ => {}
            }
            if Instant::now() >= deadline {
                let what = format!(
                    "GET {} did not succeed within {} s: last {last_problem}",
                    self.project.health_path,
                    timeout.as_secs()
                );
                return Err(failed("health_check", self.exited_message(&what).await));
            }
            tokio::select! {
                _ = tokio::time::sleep(poll_interval(deadline - timeout)) => {}
                _ = self.cancel.cancelled() => return Err(Stop::Cancelled),
            }
        }
    }
}

/// Health polls are frequent while a fresh app is likely starting, then back off.
fn poll_interval(started: Instant) -> Duration {
    if started.elapsed() < Duration::from_secs(3) {
        Duration::from_millis(25)
    } else {
        Duration::from_millis(250)
    }
}
