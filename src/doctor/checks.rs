//! The checks of `shard doctor`, one function each (see the module doc of `doctor`).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;

use super::{Check, Host};
use crate::model::BackupState;

/// Every network step of a check gives up after this.
const WITHIN: Duration = Duration::from_secs(5);
const GIB: u64 = 1024 * 1024 * 1024;

pub(super) async fn docker(host: &Host<'_>) -> Check {
    let endpoint = host.docker.endpoint().to_string();
    match tokio::time::timeout(WITHIN, host.docker.version()).await {
        Ok(Ok(version)) => Check::ok("docker", format!("Docker {version} answers at {endpoint}")),
        Ok(Err(e)) => Check::fail(
            "docker",
            format!("Docker does not answer at {endpoint}: {e}"),
            "start Docker (systemctl start docker), or set docker.host to where it listens",
        ),
        Err(_) => Check::fail(
            "docker",
            format!(
                "Docker did not answer at {endpoint} within {} s",
                WITHIN.as_secs()
            ),
            "see why dockerd hangs (journalctl -u docker); restart it",
        ),
    }
}

/// Whether `/health` at `addr` is shard's.
async fn shard_answers(addr: SocketAddr) -> bool {
    let host = match addr.ip() {
        ip if ip.is_unspecified() => "127.0.0.1".to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    let Ok(client) = reqwest::Client::builder().timeout(WITHIN).build() else {
        return false;
    };
    match client
        .get(format!("http://{host}:{}/health", addr.port()))
        .send()
        .await
    {
        Ok(r) => r.text().await.is_ok_and(|t| t.contains("\"status\"")),
        Err(_) => false,
    }
}

pub(super) async fn ports(host: &Host<'_>) -> Check {
    let config = host.config;
    let mut addresses = vec![("listen", config.listen)];
    if let Some(https) = config.proxy.https_listen {
        addresses.push(("proxy.https_listen", https));
    }
    let mut found = Vec::new();
    for (setting, addr) in addresses {
        if host.serving {
            found.push(format!("{addr} held by this shard"));
            continue;
        }
        if addr.port() == 0 {
            continue;
        }
        match std::net::TcpListener::bind(addr) {
            Ok(_) => found.push(format!("{addr} free")),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                let ours = match setting {
                    "listen" => shard_answers(addr).await,
                    // HTTPS: shard is serving when its listener answers.
                    _ => shard_answers(config.listen).await,
                };
                if !ours {
                    return Check::fail(
                        "ports",
                        format!("{addr} ({setting}) is in use by another program"),
                        format!(
                            "stop what listens there (ss -ltnp 'sport = :{}'), or set {setting}",
                            addr.port()
                        ),
                    );
                }
                found.push(format!("{addr} held by shard"));
            }
            Err(e) => {
                return Check::fail(
                    "ports",
                    format!("cannot listen on {addr} ({setting}): {e}"),
                    "run shard as root or with CAP_NET_BIND_SERVICE (the unit shard install writes has it), or pick another port",
                );
            }
        }
    }
    if found.is_empty() {
        return Check::skip("ports", "no fixed port configured");
    }
    Check::ok("ports", found.join(", "))
}

/// Host names to look up: the public URL's host and a name under the apps domain, unless
/// they are local names or addresses.
fn public_names(host: &Host<'_>) -> Vec<(String, &'static str)> {
    let mut names = Vec::new();
    if let Some(url) = &host.config.public_url
        && let Ok(url) = url::Url::parse(url)
        && let Some(name) = url.host_str()
    {
        names.push((name.to_string(), "public_url"));
    }
    names.push((
        format!("doctor-probe.{}", host.config.apps.domain),
        "apps.domain",
    ));
    names
        .into_iter()
        .filter(|(name, _)| {
            let name = name.trim_matches(['[', ']']);
            name.parse::<IpAddr>().is_err() && name != "localhost" && !name.ends_with(".localhost")
        })
        .collect()
}

/// Whether `ip` is an address of this machine (binding to it succeeds only then).
fn is_local(ip: IpAddr) -> bool {
    std::net::UdpSocket::bind((ip, 0)).is_ok()
}

pub(super) async fn dns(host: &Host<'_>) -> Check {
    let names = public_names(host);
    if names.is_empty() {
        return Check::skip("dns", "public_url and apps.domain are local names");
    }
    let mut found = Vec::new();
    for (name, setting) in names {
        let looked =
            tokio::time::timeout(WITHIN, tokio::net::lookup_host((name.clone(), 80))).await;
        let ips: Vec<IpAddr> = match looked {
            Ok(Ok(addrs)) => addrs.map(|a| a.ip()).collect(),
            _ => {
                let wildcard = if setting == "apps.domain" {
                    " (a wildcard record, *.domain)"
                } else {
                    ""
                };
                return Check::fail(
                    "dns",
                    format!("{name} ({setting}) does not resolve"),
                    format!("add an A or AAAA record{wildcard} pointing at this machine"),
                );
            }
        };
        if !ips.iter().copied().any(is_local) {
            let list: Vec<String> = ips.iter().map(IpAddr::to_string).collect();
            return Check::warn(
                "dns",
                format!(
                    "{name} ({setting}) resolves to {}, not an address of this machine",
                    list.join(", ")
                ),
                "point it at this machine, unless a NAT or load balancer forwards ports 80 and 443 here",
            );
        }
        found.push(name);
    }
    Check::ok("dns", format!("{} point at this machine", found.join(", ")))
}

pub(super) async fn http01(host: &Host<'_>) -> Check {
    let Some((name, _)) = public_names(host)
        .into_iter()
        .find(|(_, setting)| *setting == "public_url")
    else {
        return Check::skip("http01", "no public host name (public_url) to probe");
    };
    let acme = host.config.acme.directory_url.is_some();
    let url = format!("http://{name}/health");
    let answered = match reqwest::Client::builder().timeout(WITHIN).build() {
        Ok(client) => match client.get(&url).send().await {
            Ok(r) => r.text().await.is_ok_and(|t| t.contains("\"status\"")),
            Err(_) => false,
        },
        Err(_) => false,
    };
    match (answered, acme) {
        (true, _) => Check::ok("http01", format!("{url} reaches shard on port 80")),
        (false, true) => Check::fail(
            "http01",
            format!("{url} does not reach shard: ACME HTTP-01 challenges will fail"),
            "open port 80 to this machine and serve shard on it (listen = 0.0.0.0:80)",
        ),
        (false, false) => Check::warn(
            "http01",
            format!("{url} does not reach shard"),
            "open port 80 to this machine before turning ACME on",
        ),
    }
}

/// The nearest existing directory at or above `dir`.
fn existing(dir: &Path) -> PathBuf {
    let mut at = dir.to_path_buf();
    while !at.exists() {
        match at.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => at = parent.to_path_buf(),
            _ => return PathBuf::from("."),
        }
    }
    at
}

pub(super) fn disk(host: &Host<'_>) -> Check {
    let dir = existing(&host.data_dir());
    let stat = match rustix::fs::statvfs(&dir) {
        Ok(stat) => stat,
        Err(e) => {
            return Check::fail(
                "disk",
                format!("cannot read the free space of {}: {e}", dir.display()),
                "check that the data dir is readable",
            );
        }
    };
    let block = stat.f_frsize.max(1);
    let (free, total) = (stat.f_bavail * block, stat.f_blocks * block);
    let share = |part: u64, whole: u64| {
        if whole == 0 {
            100.0
        } else {
            part as f64 * 100.0 / whole as f64
        }
    };
    let space = share(free, total);
    let inodes = share(stat.f_favail, stat.f_files);
    let message = format!(
        "{:.1} GiB free of {:.1} GiB ({space:.0} %) and {inodes:.0} % of inodes free where {} is",
        free as f64 / GIB as f64,
        total as f64 / GIB as f64,
        dir.display()
    );
    let fix = "free space there: docker system prune, older backups and logs, or a larger disk";
    if free < GIB || space < 5.0 || inodes < 5.0 {
        Check::fail("disk", message, fix)
    } else if free < 5 * GIB || space < 10.0 || inodes < 10.0 {
        Check::warn("disk", message, fix)
    } else {
        Check::ok("disk", message)
    }
}

pub(super) async fn clock(host: &Host<'_>) -> Check {
    let reference = match host.db.map(crate::db::health::server_time) {
        Some(query) => match tokio::time::timeout(WITHIN, query).await {
            Ok(Ok(Some(time))) => Some((time, "the Postgres server")),
            _ => None,
        },
        None => None,
    };
    let reference = match reference {
        Some(found) => Some(found),
        None => match tokio::time::timeout(WITHIN, host.docker.system_time()).await {
            Ok(Ok(Some(time))) => Some((time, "the Docker engine")),
            _ => None,
        },
    };
    let Some((time, source)) = reference else {
        return Check::skip("clock", "no reference clock answered (Postgres, Docker)");
    };
    let skew = (Utc::now() - time).num_milliseconds().abs() as f64 / 1000.0;
    let message = format!("{skew:.1} s apart from {source}");
    let fix = "turn on time sync on both machines (timedatectl set-ntp true)";
    match skew {
        s if s >= 60.0 => Check::fail("clock", message, fix),
        s if s >= 5.0 => Check::warn("clock", message, fix),
        _ => Check::ok("clock", message),
    }
}

pub(super) async fn database(host: &Host<'_>) -> Check {
    let snapshots = host.data_dir().join("snapshots");
    let fix = format!(
        "restore the installation from a backup, or the newest snapshot in {} (stop shard first)",
        snapshots.display()
    );
    let Some(db) = host.db else {
        let why = host.db_error.clone().unwrap_or_else(|| "not opened".into());
        return Check::fail("database", format!("cannot open the database: {why}"), fix);
    };
    let postgres = crate::db::is_postgres(db);
    match tokio::time::timeout(WITHIN * 6, crate::db::health::integrity(db)).await {
        Ok(Ok(answer)) if answer == "ok" => Check::ok(
            "database",
            match postgres {
                true => "Postgres answers",
                false => "SQLite integrity check passed",
            },
        ),
        Ok(Ok(problem)) => Check::fail("database", format!("integrity check: {problem}"), fix),
        Ok(Err(e)) => Check::fail("database", format!("the database cannot be read: {e}"), fix),
        Err(_) => Check::fail(
            "database",
            "the integrity check did not finish within 30 s",
            fix,
        ),
    }
}

/// What is wrong with one source's backups (newest first): none good, the newest good one
/// older than 48 h, or the last one failed.
fn backup_problems(name: &str, list: &[crate::db::backups::Backup], problems: &mut Vec<String>) {
    let good = list
        .iter()
        .find(|b| matches!(b.status, BackupState::Succeeded | BackupState::Verified));
    match good {
        None => problems.push(format!("{name} has no good backup")),
        Some(b) if Utc::now() - b.started_at > chrono::Duration::hours(48) => {
            problems.push(format!(
                "{name}'s newest good backup is {} h old",
                (Utc::now() - b.started_at).num_hours()
            ))
        }
        Some(_) => {}
    }
    if list
        .first()
        .is_some_and(|b| b.status == BackupState::Failed)
    {
        problems.push(format!("{name}'s last backup failed"));
    }
}

/// The installation's own backups (once it has a schedule: a `shard backup` run from cron
/// leaves no record here) and each one-click database's.
pub(super) async fn backups(host: &Host<'_>) -> Check {
    use crate::db::backups::{Source, for_source, schedule};
    let Some(db) = host.db else {
        return Check::skip("backups", "the database cannot be read");
    };
    let databases = match crate::db::databases::list(db, None).await {
        Ok(list) => list,
        Err(e) => return Check::skip("backups", format!("cannot list the databases: {e}")),
    };
    let scheduled = match schedule(db, Source::Instance).await {
        Ok(found) => found.is_some(),
        Err(e) => return Check::skip("backups", format!("cannot read the schedules: {e}")),
    };
    let mut problems = Vec::new();
    if scheduled {
        let list = for_source(db, Source::Instance).await.unwrap_or_default();
        backup_problems("the installation", &list, &mut problems);
    }
    for database in &databases {
        let list = for_source(db, Source::Database(database.id))
            .await
            .unwrap_or_default();
        backup_problems(&database.name, &list, &mut problems);
    }
    let mut fixes = Vec::new();
    if !problems.is_empty() {
        fixes.push(
            "look at why a backup failed (System → Backups for the installation, Databases → \
             Backups for a database) and give each database a backup schedule"
                .to_string(),
        );
    }
    if let Ok(Some(server)) = crate::db::health::server_major(db).await
        && let Some((problem, fix)) = postgres_tools(server).await
    {
        problems.push(problem);
        fixes.push(fix);
    }
    if !problems.is_empty() {
        return Check::warn("backups", problems.join("; "), fixes.join("; "));
    }
    let installation = match scheduled {
        true => "the installation has a good backup within 48 h",
        false => {
            "the installation has no backup schedule (System → Backups; or run `shard backup` \
             from cron)"
        }
    };
    Check::ok(
        "backups",
        match databases.len() {
            0 => format!("{installation}; no one-click databases to back up"),
            n => format!("{installation}; {n} database(s), each with a good backup within 48 h"),
        },
    )
}

/// What keeps a Postgres installation from being backed up or restored: `pg_dump` or
/// `pg_restore` missing from PATH, or older than the server (`pg_dump` refuses a newer
/// server); the problem and its fix.
async fn postgres_tools(server: u32) -> Option<(String, String)> {
    let fix = format!(
        "install the Postgres {server} client tools on this host (Debian and Ubuntu: \
         apt install postgresql-client-{server}); `shard backup` and scheduled installation \
         backups run pg_dump, `shard restore` runs pg_restore"
    );
    for program in ["pg_dump", "pg_restore"] {
        let probe = tokio::task::spawn_blocking(move || tool_problem(program, server));
        let problem = match tokio::time::timeout(WITHIN, probe).await {
            Ok(Ok(None)) => continue,
            Ok(Ok(Some(problem))) => problem,
            Ok(Err(e)) => format!("cannot run {program}: {e}"),
            Err(_) => format!("{program} --version did not answer within 5 s"),
        };
        return Some((problem, fix));
    }
    None
}

/// What is wrong with `program` (a Postgres client tool) for a `server` of that major
/// version, from its `--version` (blocking).
fn tool_problem(program: &str, server: u32) -> Option<String> {
    let out = match std::process::Command::new(program)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Some(format!(
                "{program} is not installed (the installation's backups need it)"
            ));
        }
        Err(e) => return Some(format!("cannot run {program}: {e}")),
    };
    if !out.status.success() {
        return Some(format!("{program} --version failed ({})", out.status));
    }
    match client_major(&String::from_utf8_lossy(&out.stdout)) {
        Some(client) if client < server => Some(format!(
            "{program} is version {client}, older than the Postgres {server} server"
        )),
        Some(_) => None,
        None => Some(format!("{program} --version did not name a version")),
    }
}

/// The major version in `pg_dump (PostgreSQL) 15.4 (Debian 15.4-1)`.
fn client_major(version: &str) -> Option<u32> {
    let rest = version.split(") ").nth(1)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

pub(super) async fn certificates(host: &Host<'_>) -> Check {
    let mut expiries: Vec<(String, chrono::DateTime<Utc>)> = Vec::new();
    let mut unreadable = Vec::new();
    let mut files: Vec<(String, PathBuf)> = host
        .config
        .proxy
        .certificates
        .iter()
        .map(|c| (c.domain.clone(), c.cert_file.clone()))
        .collect();
    if let Ok(entries) = std::fs::read_dir(host.data_dir().join("certs")) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            files.push((name, entry.path().join("cert.pem")));
        }
    }
    for (name, path) in files {
        match crate::proxy::tls::file_expiry(&path) {
            Ok(at) => expiries.push((name, at)),
            Err(e) => unreadable.push(format!("{name}: {e}")),
        }
    }
    if let Some(db) = host.db
        && let Ok(domains) = crate::db::domains::verified(db).await
    {
        for domain in domains {
            if let Some(at) = domain.cert_expires_at
                && !expiries.iter().any(|(n, _)| *n == domain.domain)
            {
                expiries.push((domain.domain, at));
            }
        }
    }
    let now = Utc::now();
    let expired: Vec<&String> = expiries
        .iter()
        .filter(|(_, at)| *at <= now)
        .map(|(n, _)| n)
        .collect();
    let soon: Vec<String> = expiries
        .iter()
        .filter(|(_, at)| *at > now && *at - now < chrono::Duration::days(14))
        .map(|(n, at)| format!("{n} in {} days", (*at - now).num_days()))
        .collect();
    let fix = "renew it: for an ACME one see the domain's status in the dashboard; replace a configured file (proxy.certificates) and restart";
    if !expired.is_empty() || !unreadable.is_empty() {
        let mut found: Vec<String> = expired.iter().map(|n| format!("{n} has expired")).collect();
        found.extend(unreadable);
        return Check::fail("certificates", found.join("; "), fix);
    }
    if !soon.is_empty() {
        return Check::warn(
            "certificates",
            format!("expiring: {}", soon.join(", ")),
            fix,
        );
    }
    match expiries.len() {
        0 => Check::ok("certificates", "no certificates"),
        n => Check::ok(
            "certificates",
            format!("{n} certificate(s), none expiring within 14 days"),
        ),
    }
}

/// Whether others than the owner may read `path`.
fn readable_by_others(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then_some(mode)
}

pub(super) fn config(host: &Host<'_>) -> Check {
    let config = host.config;
    let mut unwise = Vec::new();
    let mut fixes = Vec::new();
    let mut fail = false;
    if let Some(file) = &config.source_file
        && std::fs::read_to_string(file)
            .is_ok_and(|t| t.lines().any(|l| l.trim_start().starts_with("secret_key")))
        && let Some(mode) = readable_by_others(file)
    {
        fail = true;
        unwise.push(format!(
            "{} holds secret_key and has mode {mode:o}",
            file.display()
        ));
        fixes.push(format!("chmod 600 {}", file.display()));
    }
    let key_file = host.data_dir().join("secret.key");
    if let Some(mode) = readable_by_others(&key_file) {
        fail = true;
        unwise.push(format!("{} has mode {mode:o}", key_file.display()));
        fixes.push(format!("chmod 600 {}", key_file.display()));
    }
    let https = config
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"));
    if config.acme.directory_url.is_some() && !https {
        unwise.push(format!(
            "ACME is on but public_url is {}",
            config.public_url()
        ));
        fixes.push("set public_url to the https:// address".into());
    }
    match (unwise.is_empty(), fail) {
        (true, _) => Check::ok("config", "nothing unwise found"),
        (false, true) => Check::fail("config", unwise.join("; "), fixes.join("; ")),
        (false, false) => Check::warn("config", unwise.join("; "), fixes.join("; ")),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_client_major_version_is_read_from_its_version_line() {
        use super::client_major;
        let debian = "pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n";
        assert_eq!(client_major(debian), Some(15));
        assert_eq!(client_major("pg_restore (PostgreSQL) 9.6.24\n"), Some(9));
        assert_eq!(client_major("pg_dump (PostgreSQL) 17devel"), Some(17));
        assert_eq!(client_major("pg_dump 15"), None);
    }
}
