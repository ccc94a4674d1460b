//! Builds the dashboard (`web/`, Vite + TypeScript) into `web/dist` before the crate embeds it.
//! Runs `npm install` when dependencies are missing or the lockfile changed, then `npm run build`,
//! but only when a source file is newer than `web/dist/index.html`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

const INPUTS: &[&str] = &[
    "web/src",
    "web/index.html",
    "web/package.json",
    "web/package-lock.json",
    "web/vite.config.ts",
    "web/tsconfig.json",
    "web/public",
];

fn main() {
    for input in INPUTS {
        println!("cargo:rerun-if-changed={input}");
    }
    println!("cargo:rerun-if-env-changed=SHARD_SKIP_WEB_BUILD");
    let web = PathBuf::from("web");
    let built = web.join("dist/index.html");
    if std::env::var_os("SHARD_SKIP_WEB_BUILD").is_some() && built.exists() {
        return;
    }
    let newest_input = INPUTS.iter().filter_map(|p| newest(Path::new(p))).max();
    let dist_time = modified(&built);
    if dist_time.is_some() && newest_input <= dist_time {
        return;
    }
    let lock_time = modified(&web.join("package-lock.json"));
    let deps_time = modified(&web.join("node_modules/.package-lock.json"));
    if deps_time.is_none() || lock_time > deps_time {
        // Not `npm ci`: npm leaves the platform-specific optional packages of rollup out of
        // the lockfile, and `npm ci` then refuses it as out of sync. `npm install` installs
        // the locked versions all the same.
        npm(&web, &["install", "--no-audit", "--no-fund"]);
    }
    npm(&web, &["run", "build"]);
}

fn npm(dir: &Path, args: &[&str]) {
    let status = Command::new("npm").args(args).current_dir(dir).status().unwrap_or_else(|e| {
        panic!(
            "cannot run `npm {}` in web/ ({e}). The dashboard is built with Node.js 20+ and npm: \
             install them (apt-get install nodejs npm), or build web/dist yourself and set \
             SHARD_SKIP_WEB_BUILD=1",
            args.join(" ")
        )
    });
    if !status.success() {
        panic!(
            "`npm {}` in web/ failed ({status}); see its output above",
            args.join(" ")
        );
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The newest modification time of a file or of any file under a directory.
fn newest(path: &Path) -> Option<SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    std::fs::read_dir(path)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| newest(&entry.path()))
        .max()
}
