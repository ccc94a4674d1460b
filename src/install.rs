//! `shard install` / `shard uninstall`: shard as a systemd service on a VPS, with nothing
//! downloaded. Install copies this binary to `/usr/local/bin/shard`, makes the data dir
//! (`/var/lib/shard`, 0700) and `/etc/shard/shard.toml` (0600: the public URL, the listen
//! address, the data dir), writes `/etc/systemd/system/shard.service`, enables and starts it,
//! waits until shard answers and prints the setup URL. Uninstall stops and removes the unit
//! and keeps the binary's data (the data dir and the config). `--root` puts every path under
//! another directory (packaging, tests) and `--no-start` leaves systemd alone.
//!
//! The unit: `Type=notify` (shard says `READY=1` once it listens) with `NotifyAccess=all`
//! (after an upgrade the new process is the one that notifies), `WatchdogSec=30` (shard pings
//! every 15 s), `ExecReload` sends SIGUSR2 (an upgrade in place, no request refused),
//! `Restart=on-failure`, and the hardening that still lets it talk to Docker and bind 80/443.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;

/// What `shard install` was asked.
#[derive(Debug, Clone)]
pub struct Install {
    /// Every path is under this (default `/`).
    pub root: PathBuf,
    /// The dashboard's address as users reach it.
    pub public_url: String,
    pub listen: std::net::SocketAddr,
    /// Leave systemd alone (no daemon-reload, enable, start).
    pub no_start: bool,
}

struct Paths {
    binary: PathBuf,
    config: PathBuf,
    data_dir: PathBuf,
    unit: PathBuf,
}

impl Paths {
    fn under(root: &Path) -> Paths {
        Paths {
            binary: root.join("usr/local/bin/shard"),
            config: root.join("etc/shard/shard.toml"),
            data_dir: root.join("var/lib/shard"),
            unit: root.join("etc/systemd/system/shard.service"),
        }
    }
}

/// The unit file for the binary, config and data dir at these paths.
pub fn unit(binary: &Path, config: &Path, data_dir: &Path) -> String {
    format!(
        "[Unit]
Description=shard, a self-hosted PaaS
After=network-online.target docker.service
Wants=network-online.target
Requires=docker.service

[Service]
Type=notify
NotifyAccess=all
ExecStart={binary} --config {config} serve
ExecReload=/bin/kill -USR2 $MAINPID
Restart=on-failure
RestartSec=2
WatchdogSec=30
TimeoutStopSec=90
KillMode=mixed
Environment=NO_COLOR=1
# Hardening that still lets shard reach Docker's socket and bind ports 80 and 443.
AmbientCapabilities=CAP_NET_BIND_SERVICE
NoNewPrivileges=yes
PrivateTmp=yes
ProtectSystem=strict
ProtectHome=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
ProtectClock=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RestrictRealtime=yes
RestrictNamespaces=yes
SystemCallArchitectures=native
ReadWritePaths={data_dir}
UMask=0077

[Install]
WantedBy=multi-user.target
",
        binary = binary.display(),
        config = config.display(),
        data_dir = data_dir.display(),
    )
}

fn write_private(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn systemctl(args: &[&str]) -> anyhow::Result<()> {
    let status = std::process::Command::new("systemctl")
        .args(args)
        .status()
        .context("cannot run systemctl (is this a systemd machine? use --no-start)")?;
    anyhow::ensure!(
        status.success(),
        "systemctl {} failed ({status})",
        args.join(" ")
    );
    Ok(())
}

/// Installs (see the module doc); returns the setup URL once shard answers, or the command
/// that starts it with `no_start`.
pub fn install(options: &Install) -> anyhow::Result<String> {
    let paths = Paths::under(&options.root);
    let url = url::Url::parse(&options.public_url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .with_context(|| {
            format!(
                "--public-url {}: give the address users open, such as https://shard.example.com",
                options.public_url
            )
        })?;
    let public_url = url.as_str().trim_end_matches('/').to_string();
    if paths.config.exists() {
        anyhow::bail!(
            "{} exists already: shard is installed (shard uninstall first, or edit it)",
            paths.config.display()
        );
    }
    let me = std::env::current_exe().context("cannot tell where this binary is")?;
    if let Some(dir) = paths.binary.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if me != paths.binary {
        // Written beside and renamed: a running shard keeps its (old) file.
        let staged = paths.binary.with_extension("new");
        std::fs::copy(&me, &staged)
            .with_context(|| format!("cannot copy {} to {}", me.display(), staged.display()))?;
        std::fs::rename(&staged, &paths.binary)?;
    }
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(&paths.data_dir)?;
        std::fs::set_permissions(&paths.data_dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let config = format!(
        "# Written by `shard install`; every key is in config.example.toml.\n\
         public_url = \"{public_url}\"\n\
         listen = \"{}\"\n\
         data_dir = \"{}\"\n",
        options.listen,
        paths.data_dir.display()
    );
    write_private(&paths.config, &config, 0o600)?;
    write_private(
        &paths.unit,
        &unit(&paths.binary, &paths.config, &paths.data_dir),
        0o644,
    )?;
    if options.no_start {
        return Ok(format!(
            "installed; start it with: {} --config {} serve",
            paths.binary.display(),
            paths.config.display()
        ));
    }
    systemctl(&["daemon-reload"])?;
    systemctl(&["enable", "--now", "shard.service"])?;
    setup_url(
        &paths.data_dir,
        &public_url,
        options.listen,
        Duration::from_secs(60),
    )
}

/// Waits until shard answers on `listen` and has written its setup token; the setup URL.
pub fn setup_url(
    data_dir: &Path,
    public_url: &str,
    listen: std::net::SocketAddr,
    within: Duration,
) -> anyhow::Result<String> {
    let started = Instant::now();
    let host = match listen.ip() {
        ip if ip.is_unspecified() => "127.0.0.1".to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    let health = format!("{host}:{}", listen.port());
    loop {
        let answered = std::net::TcpStream::connect_timeout(
            &health.parse().context("the listen address")?,
            Duration::from_secs(1),
        )
        .is_ok();
        let token = std::fs::read_to_string(data_dir.join("setup-token")).ok();
        match (answered, token) {
            (true, Some(token)) => {
                return Ok(format!("{public_url}/setup?token={}", token.trim()));
            }
            _ if started.elapsed() > within => anyhow::bail!(
                "shard did not answer on {health} within {} s: see journalctl -u shard",
                within.as_secs()
            ),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Stops and removes the unit; keeps the data dir, the config and the binary.
pub fn uninstall(root: &Path, no_start: bool) -> anyhow::Result<String> {
    let paths = Paths::under(root);
    if !paths.unit.exists() {
        anyhow::bail!(
            "{} does not exist: shard is not installed as a service",
            paths.unit.display()
        );
    }
    if !no_start {
        systemctl(&["disable", "--now", "shard.service"])?;
    }
    std::fs::remove_file(&paths.unit)?;
    if !no_start {
        systemctl(&["daemon-reload"])?;
    }
    Ok(format!(
        "removed {}; kept the data in {} and the config {} (delete them to remove everything)",
        paths.unit.display(),
        paths.data_dir.display(),
        paths.config.display()
    ))
}
