//! The `[github]` section: the OAuth app shard signs people in with, and where GitHub is
//! (GitHub Enterprise Server works by pointing both URLs at it).

use serde::{Deserialize, Serialize};

use super::{Config, ConfigError, Secret};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GithubConfig {
    /// The OAuth app's client id; GitHub sign-in is off until it and the secret are set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<Secret>,
    /// REST API base, e.g. `https://github.example.com/api/v3` for GitHub Enterprise Server.
    pub api_url: String,
    /// Web base (OAuth pages), e.g. `https://github.example.com`.
    pub web_url: String,
    /// Whether a GitHub user without a shard account may create one by signing in.
    pub allow_signup: bool,
}

impl Default for GithubConfig {
    fn default() -> Self {
        Self {
            client_id: None,
            client_secret: None,
            api_url: "https://api.github.com".into(),
            web_url: "https://github.com".into(),
            allow_signup: false,
        }
    }
}

impl GithubConfig {
    /// Client id and secret, when GitHub sign-in is configured.
    pub fn oauth_app(&self) -> Option<(&str, &str)> {
        match (&self.client_id, &self.client_secret) {
            (Some(id), Some(secret)) if !id.is_empty() && !secret.expose().is_empty() => {
                Some((id, secret.expose()))
            }
            _ => None,
        }
    }

    pub fn api(&self) -> &str {
        self.api_url.trim_end_matches('/')
    }

    pub fn web(&self) -> &str {
        self.web_url.trim_end_matches('/')
    }
}

impl Config {
    /// The checks of `[github]` (part of `Config::validate`).
    pub(super) fn check_github(&self) -> Result<(), ConfigError> {
        let g = &self.github;
        let bad = |key: &str, why: &str| Err(ConfigError(format!("github.{key}: {why}")));
        for (key, url) in [("api_url", &g.api_url), ("web_url", &g.web_url)] {
            if url::Url::parse(url).map_or(true, |u| !matches!(u.scheme(), "http" | "https")) {
                return bad(key, "must be an http(s) URL");
            }
        }
        if g.client_id.is_some() != g.client_secret.is_some() {
            return bad("client_id", "client_id and client_secret go together");
        }
        Ok(())
    }
}
