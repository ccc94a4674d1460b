//! Where `shard login` keeps the server URL and the API token: `shard/cli.toml` in the user's
//! config directory (`$XDG_CONFIG_HOME`, else `~/.config`), a file only its owner can read
//! (0600, in a 0700 directory).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ClientError;

#[derive(Serialize, Deserialize, Clone)]
pub struct Credentials {
    pub url: String,
    pub token: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("url", &self.url)
            .field("token", &"[redacted]")
            .finish()
    }
}

pub fn path() -> Result<PathBuf, ClientError> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => PathBuf::from(home).join(".config"),
            None => {
                return Err(ClientError::Usage(
                    "neither XDG_CONFIG_HOME nor HOME is set; cannot find the config directory"
                        .into(),
                ));
            }
        },
    };
    Ok(base.join("shard").join("cli.toml"))
}

pub fn load() -> Result<Credentials, ClientError> {
    let path = path()?;
    let text = std::fs::read_to_string(&path).map_err(|_| {
        ClientError::NotLoggedIn(format!(
            "not logged in ({} is missing); run `shard login <url>`",
            path.display()
        ))
    })?;
    toml::from_str(&text).map_err(|e| {
        ClientError::NotLoggedIn(format!(
            "{} is not readable ({e}); run `shard login <url>` again",
            path.display()
        ))
    })
}

pub fn save(credentials: &Credentials) -> Result<PathBuf, ClientError> {
    let path = path()?;
    let io =
        |e: std::io::Error| ClientError::Usage(format!("cannot write {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    }
    let text = toml::to_string(credentials)
        .map_err(|e| ClientError::Usage(format!("cannot encode the credentials: {e}")))?;
    // Written beside and renamed, so a crash never leaves half a file; created 0600.
    let tmp = path.with_extension("toml.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)?;
    Ok(path)
}
