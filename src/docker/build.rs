//! Image builds. The request is made on a connection of its own to the engine's socket rather
//! than through bollard, for two things bollard's build options cannot say: `cgroupparent` (the
//! build's steps run under a cgroup whose `pids.max` stops a fork bomb; see `cgroup`) and a
//! memory limit above 2 GiB. The context tar streams from its file on disk; the output streams
//! back as bounded lines.

use std::collections::HashMap;
use std::path::PathBuf;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use serde::Deserialize;

use super::cgroup::BuildCgroup;
use super::{Engine, EngineError, LineSplitter, cap_text};

/// One JSON message of the engine's build output can carry at most this much before a newline;
/// past it the build is stopped (the engine itself sends small messages).
const MAX_MESSAGE_BYTES: usize = 4 << 20;

/// What `Engine::build_image` needs.
pub struct BuildSpec {
    pub tag: String,
    /// Path of the Dockerfile inside the context.
    pub dockerfile: String,
    /// The context tar on disk (`context::tar_context_file`).
    pub context: PathBuf,
    pub build_args: HashMap<String, String>,
    pub labels: HashMap<String, String>,
    /// Names the build's cgroup (the deployment id).
    pub name: String,
    pub limits: BuildLimits,
}

/// What every step of a build may use (`[deploy] build_*`).
#[derive(Debug, Clone, Copy, Default)]
pub struct BuildLimits {
    pub memory_bytes: Option<u64>,
    /// Thousandths of a CPU.
    pub cpu_millis: Option<u64>,
    /// Processes (and threads) of all the build's steps together.
    pub pids: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The Dockerfile failed; `step` is the last `Step N/M : ...` line seen.
    #[error("{message}")]
    Failed {
        message: String,
        step: Option<String>,
    },
    #[error("build cancelled")]
    Cancelled,
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// A message of the engine's build output.
#[derive(Deserialize)]
struct Message {
    stream: Option<String>,
    status: Option<String>,
    error: Option<String>,
    #[serde(rename = "errorDetail")]
    error_detail: Option<ErrorDetail>,
}

#[derive(Deserialize)]
struct ErrorDetail {
    message: Option<String>,
}

impl Engine {
    /// Builds `spec`, sending every output line as it arrives to `lines` (a bounded channel:
    /// a slow reader slows the build stream, never grows memory); lines longer than `max_line`
    /// bytes are cut. Dropping the connection on cancel stops the build in dockerd. When the
    /// process limit cannot be applied here, the first line says so.
    pub async fn build_image(
        &self,
        spec: BuildSpec,
        cancel: &tokio_util::sync::CancellationToken,
        max_line: usize,
        lines: tokio::sync::mpsc::Sender<String>,
    ) -> Result<(), BuildError> {
        let _building = self.layers.read().await;
        let docker = self.client().await?;
        let version = docker.client_version();
        let cgroup = match spec.limits.pids {
            Some(pids) => BuildCgroup::prepare(self.cgroup_layout().await, &spec.name, pids),
            None => Err("no process limit is set (deploy.build_pids)".into()),
        };
        if let (Some(_), Err(why)) = (spec.limits.pids, &cgroup) {
            let _ = lines
                .send(format!(
                    "==> The build's process limit is not enforced: {why}"
                ))
                .await;
        }
        let query = query(&spec, cgroup.as_ref().ok());
        let path = format!(
            "/v{}.{}/build?{query}",
            version.major_version, version.minor_version
        );
        let result = self
            .post_build(&path, &spec, cancel, max_line, &lines)
            .await;
        drop(cgroup);
        result
    }

    async fn post_build(
        &self,
        path: &str,
        spec: &BuildSpec,
        cancel: &tokio_util::sync::CancellationToken,
        max_line: usize,
        lines: &tokio::sync::mpsc::Sender<String>,
    ) -> Result<(), BuildError> {
        let unreachable = |reason: String| {
            BuildError::Engine(EngineError::Unreachable {
                endpoint: self.endpoint.clone(),
                reason,
            })
        };
        let file = tokio::fs::File::open(&spec.context)
            .await
            .map_err(|e| unreachable(format!("cannot open the build context: {e}")))?;
        let body = StreamBody::new(
            tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024).map(to_frame as ToFrame),
        );
        let request = hyper::Request::post(path)
            .header(hyper::header::HOST, "docker")
            .header(hyper::header::CONTENT_TYPE, "application/x-tar")
            .body(body)
            .map_err(|e| unreachable(e.to_string()))?;
        let mut sender = self.connect_raw().await.map_err(unreachable)?;
        let response = tokio::select! {
            sent = sender.send_request(request) => sent.map_err(|e| unreachable(e.to_string()))?,
            _ = cancel.cancelled() => return Err(BuildError::Cancelled),
        };
        let status = response.status();
        let mut body = response.into_body();
        if !status.is_success() {
            let mut text = Vec::new();
            while let Some(Ok(frame)) = body.frame().await {
                if let Some(data) = frame.data_ref() {
                    text.extend_from_slice(data);
                }
                if text.len() > 64 * 1024 {
                    break;
                }
            }
            let message = serde_json::from_slice::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_string))
                .unwrap_or_else(|| String::from_utf8_lossy(&text).into_owned());
            return Err(BuildError::Failed {
                message: format!("Docker refused the build ({status}): {message}"),
                step: None,
            });
        }
        let mut splitter = LineSplitter::new(max_line);
        let mut step = None;
        let mut pending: Vec<u8> = Vec::new();
        let mut ready = Vec::new();
        loop {
            let frame = tokio::select! {
                frame = body.frame() => frame,
                _ = cancel.cancelled() => return Err(BuildError::Cancelled),
            };
            let Some(frame) = frame else { break };
            let frame = frame.map_err(|e| unreachable(format!("the build stream broke: {e}")))?;
            let Some(data) = frame.data_ref() else {
                continue;
            };
            pending.extend_from_slice(data);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let raw: Vec<u8> = pending.drain(..=end).collect();
                let raw = raw.trim_ascii();
                if raw.is_empty() {
                    continue;
                }
                let Ok(message) = serde_json::from_slice::<Message>(raw) else {
                    continue;
                };
                if let Some(text) = &message.stream {
                    splitter.push(text, |line| ready.push(line));
                }
                if let Some(status) = &message.status {
                    splitter.push(status, |line| ready.push(line));
                    splitter.finish(|line| ready.push(line));
                }
                for line in ready.drain(..) {
                    if line.starts_with("Step ") {
                        step = Some(line.clone());
                    }
                    tokio::select! {
                        sent = lines.send(line) => if sent.is_err() { return Err(BuildError::Cancelled) },
                        _ = cancel.cancelled() => return Err(BuildError::Cancelled),
                    }
                }
                let error = message
                    .error_detail
                    .and_then(|d| d.message)
                    .or(message.error);
                if let Some(mut message) = error {
                    cap_text(&mut message, max_line);
                    return Err(BuildError::Failed { message, step });
                }
            }
            if pending.len() > MAX_MESSAGE_BYTES {
                return Err(BuildError::Failed {
                    message: "the engine sent a build message too large to read".into(),
                    step,
                });
            }
        }
        splitter.finish(|line| ready.push(line));
        for line in ready {
            let _ = lines.send(line).await;
        }
        Ok(())
    }

    /// A fresh HTTP/1 connection to the engine (unix socket or plain TCP).
    async fn connect_raw(
        &self,
    ) -> Result<hyper::client::conn::http1::SendRequest<RequestBody>, String> {
        if let Some(socket) = self.endpoint.strip_prefix("unix://") {
            let stream = tokio::net::UnixStream::connect(socket)
                .await
                .map_err(|e| e.to_string())?;
            handshake(stream).await
        } else if let Some(address) = self.endpoint.strip_prefix("tcp://") {
            let stream = tokio::net::TcpStream::connect(address.trim_end_matches('/'))
                .await
                .map_err(|e| e.to_string())?;
            handshake(stream).await
        } else {
            Err("builds need a unix:// or tcp:// Docker endpoint".into())
        }
    }
}

type ToFrame = fn(std::io::Result<Bytes>) -> std::io::Result<Frame<Bytes>>;

fn to_frame(chunk: std::io::Result<Bytes>) -> std::io::Result<Frame<Bytes>> {
    chunk.map(Frame::data)
}

/// The context file as a request body, read in 64 KiB chunks.
type RequestBody =
    StreamBody<futures_util::stream::Map<tokio_util::io::ReaderStream<tokio::fs::File>, ToFrame>>;

async fn handshake<S>(
    stream: S,
) -> Result<hyper::client::conn::http1::SendRequest<RequestBody>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "build connection ended");
        }
    });
    Ok(sender)
}

/// The build's query string: the classic builder, with the spec's limits.
fn query(spec: &BuildSpec, cgroup: Option<&BuildCgroup>) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("dockerfile", &spec.dockerfile)
        .append_pair("t", &spec.tag)
        .append_pair("rm", "1")
        .append_pair("forcerm", "1")
        .append_pair("version", "1")
        .append_pair(
            "buildargs",
            &serde_json::to_string(&spec.build_args).unwrap_or_default(),
        )
        .append_pair(
            "labels",
            &serde_json::to_string(&spec.labels).unwrap_or_default(),
        );
    if let Some(memory) = spec.limits.memory_bytes {
        // No swap beyond the memory limit.
        q.append_pair("memory", &memory.to_string())
            .append_pair("memswap", &memory.to_string());
    }
    // A build is background work: under contention the apps' containers (weight 1024) get
    // four times its share of CPU.
    q.append_pair("cpushares", "256");
    if let Some(millis) = spec.limits.cpu_millis {
        q.append_pair("cpuperiod", "100000")
            .append_pair("cpuquota", &(millis * 100).to_string());
    }
    if let Some(cgroup) = cgroup {
        q.append_pair("cgroupparent", cgroup.parent());
    }
    q.finish()
}
