//! The client's side of the REST API: bearer-authenticated JSON calls, errors in the words of
//! the server's error body.

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::ClientError;
use super::credentials::Credentials;

pub struct Api {
    pub base: String,
    /// Empty for the calls a client makes before it has a token (a device sign-in).
    token: String,
    http: reqwest::Client,
}

impl Api {
    pub fn new(credentials: &Credentials) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .user_agent(concat!("shard-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Unreachable(format!("cannot build an HTTP client: {e}")))?;
        Ok(Self {
            base: credentials.url.trim_end_matches('/').to_string(),
            token: credentials.token.clone(),
            http,
        })
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// The WebSocket URL of the server.
    pub fn ws_url(&self) -> String {
        self.ws_path("/api/v1/ws")
    }

    /// A WebSocket URL on the server (`path` from the root).
    pub fn ws_path(&self, path: &str) -> String {
        let rest = self
            .base
            .strip_prefix("https://")
            .map(|r| format!("wss://{r}"))
            .or_else(|| {
                self.base
                    .strip_prefix("http://")
                    .map(|r| format!("ws://{r}"))
            })
            .unwrap_or_else(|| self.base.clone());
        format!("{rest}{path}")
    }

    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T, ClientError> {
        let url = format!("{}/api/v1{path}", self.base);
        let mut request = self.http.request(method, &url);
        if !self.token.is_empty() {
            request = request.bearer_auth(&self.token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| ClientError::Unreachable(format!("cannot reach {}: {e}", self.base)))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ClientError::Unreachable(format!("the answer broke off: {e}")))?;
        if !status.is_success() {
            return Err(error_of(status, &bytes));
        }
        let bytes = if bytes.is_empty() {
            &b"null"[..]
        } else {
            &bytes[..]
        };
        serde_json::from_slice(bytes).map_err(|e| {
            ClientError::Unreachable(format!(
                "{} did not answer like a shard server ({e})",
                self.base
            ))
        })
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(Method::GET, path, None).await
    }

    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<T, ClientError> {
        self.call(Method::POST, path, Some(body)).await
    }

    /// The project named `name_or_id` (its id, slug or name) among those the token sees.
    pub async fn project(&self, name_or_id: &str) -> Result<Value, ClientError> {
        let list: Vec<Value> = self.get("/projects").await?;
        let wanted = name_or_id.trim();
        list.into_iter()
            .find(|p| {
                ["id", "slug", "name"].iter().any(|k| {
                    p[k].as_str()
                        .is_some_and(|v| v.eq_ignore_ascii_case(wanted))
                })
            })
            .ok_or_else(|| ClientError::Api {
                status: 404,
                code: "not_found".into(),
                message: format!("no project '{wanted}' (see `shard projects`)"),
            })
    }
}

/// A failed answer as the server put it (`{"error": {"code", "message"}}`), or its status.
pub fn error_of(status: StatusCode, body: &[u8]) -> ClientError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().map(|v| &v["error"]);
    let code = error
        .and_then(|e| e["code"].as_str())
        .unwrap_or("http_error")
        .to_string();
    let message = error
        .and_then(|e| e["message"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| format!("the server answered {status}"));
    ClientError::Api {
        status: status.as_u16(),
        code,
        message,
    }
}
