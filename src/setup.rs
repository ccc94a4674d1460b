//! First-run setup: while no user exists, a one-time token in `<data_dir>/setup-token` (0600)
//! lets exactly one person create the first admin. The file is removed once used.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::secrets;

pub const SETUP_TOKEN_FILE: &str = "setup-token";

pub fn token_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SETUP_TOKEN_FILE)
}

/// Returns the pending token, creating the file if there is none yet.
pub fn ensure_token(data_dir: &Path) -> anyhow::Result<String> {
    let path = token_path(data_dir);
    if let Some(token) = read_token(&path) {
        return Ok(token);
    }
    let token = secrets::random_token("");
    secrets::write_private_file(&path, format!("{token}\n").as_bytes())
        .context("cannot write the setup token")?;
    Ok(token)
}

pub fn read_token(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let token = text.trim();
    (!token.is_empty()).then(|| token.to_string())
}

/// Removes the token file; a missing file is fine.
pub fn remove_token(data_dir: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(token_path(data_dir)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).context("cannot remove the setup token file")
        }
        _ => Ok(()),
    }
}
