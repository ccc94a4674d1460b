//! What differs between kinds of database in a backup: the dump command (`pg_dump -Fc`; for
//! Redis `redis-cli --rdb -`, a snapshot the server forks and streams as it would to a
//! replica; for MySQL and MariaDB `mysqldump`/`mariadb-dump --single-transaction`, SQL text
//! that shard gzips), what the source is counted by (rows per table; keys per Redis
//! database), the client a dump is restored with, and the file's extension.

use std::collections::BTreeMap;

use super::connection::Credentials;
use crate::model::DatabaseKind;

/// Rows per table, as `schema.table|rows` lines, in one query (no table is named twice).
const COUNT_ROWS: &str = "SELECT n.nspname || '.' || c.relname, \
     (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', \
     n.nspname, c.relname), false, true, '')))[1]::text \
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
     AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1";

/// The backup file's extension.
pub(super) fn extension(kind: DatabaseKind) -> &'static str {
    match kind {
        DatabaseKind::Redis => "rdb",
        DatabaseKind::Mysql | DatabaseKind::Mariadb => "sql.gz",
        DatabaseKind::Postgres => "dump",
    }
}

/// Whether shard gzips the dump (SQL text) on its way to the store.
pub(super) fn gzipped(kind: DatabaseKind) -> bool {
    matches!(kind, DatabaseKind::Mysql | DatabaseKind::Mariadb)
}

/// MySQL's and MariaDB's programs: the official MariaDB 11 images name them `mariadb*` only.
fn mysql_program(kind: DatabaseKind, dump: bool) -> String {
    match (kind, dump) {
        (DatabaseKind::Mariadb, true) => "mariadb-dump".into(),
        (DatabaseKind::Mariadb, false) => "mariadb".into(),
        (_, true) => "mysqldump".into(),
        (_, false) => "mysql".into(),
    }
}

/// The root password as the MySQL clients take it.
fn root_password(c: &Credentials) -> String {
    format!("-p{}", c.root_password.as_deref().unwrap_or_default())
}

/// The command that writes a backup to its standard output.
pub(super) fn dump_command(kind: DatabaseKind, c: &Credentials) -> Vec<String> {
    let words: Vec<&str> = match kind {
        DatabaseKind::Redis => vec![
            "redis-cli",
            "--no-auth-warning",
            "-a",
            &c.password,
            "--rdb",
            "-",
        ],
        DatabaseKind::Postgres => vec!["pg_dump", "-Fc", "-U", &c.user, "-d", &c.database],
        DatabaseKind::Mysql | DatabaseKind::Mariadb => {
            let mut words = vec![mysql_program(kind, true)];
            words.extend(
                [
                    "--single-transaction",
                    "--routines",
                    "--triggers",
                    "--events",
                    "--hex-blob",
                    "-uroot",
                ]
                .map(String::from),
            );
            words.push(root_password(c));
            words.push(c.database.clone());
            return words;
        }
    };
    words.into_iter().map(str::to_string).collect()
}

/// The SQL client of a MySQL or MariaDB database, on its database, as root: running `query`,
/// else reading statements from its standard input.
pub(super) fn sql_client(kind: DatabaseKind, c: &Credentials, query: Option<&str>) -> Vec<String> {
    let mut words = vec![
        mysql_program(kind, false),
        "-uroot".into(),
        root_password(c),
    ];
    if let Some(query) = query {
        words.extend(["-N", "-B", "-e", query].map(String::from));
    }
    words.push(c.database.clone());
    words
}

/// The tables of a MySQL or MariaDB database, one per line.
pub(super) const LIST_TABLES: &str = "SELECT table_name FROM information_schema.tables \
     WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' ORDER BY 1";

/// One query that counts the rows of each of `tables` (`name<TAB>rows` lines).
pub(super) fn count_tables_query(tables: &[&str]) -> Option<String> {
    let parts: Vec<String> = tables
        .iter()
        .map(|t| {
            let literal = t.replace('\\', "\\\\").replace('\'', "''");
            let ident = t.replace('`', "``");
            format!("SELECT '{literal}', COUNT(*) FROM `{ident}`")
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(" UNION ALL "))
}

/// The command that prints what the database holds, for [`parse_counts`].
pub(super) fn count_command(kind: DatabaseKind, c: &Credentials) -> Vec<String> {
    if matches!(kind, DatabaseKind::Mysql | DatabaseKind::Mariadb) {
        return sql_client(kind, c, Some(LIST_TABLES));
    }
    let words: Vec<&str> = match kind {
        DatabaseKind::Redis => vec![
            "redis-cli",
            "--no-auth-warning",
            "-a",
            &c.password,
            "INFO",
            "keyspace",
        ],
        _ => vec![
            "psql",
            "-qtAX",
            "-F",
            "|",
            "-U",
            &c.user,
            "-d",
            &c.database,
            "-c",
            COUNT_ROWS,
        ],
    };
    words.into_iter().map(str::to_string).collect()
}

/// Parses [`count_command`]'s output: `schema.table|rows` lines, or Redis's
/// `db0:keys=3,expires=0,…` lines.
pub(super) fn parse_counts(kind: DatabaseKind, text: &str) -> BTreeMap<String, i64> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let (name, count) = match kind {
                DatabaseKind::Redis => {
                    let (db, rest) = line.split_once(':')?;
                    let keys = rest.split(',').find_map(|p| p.strip_prefix("keys="))?;
                    (db.starts_with("db").then_some(db)?, keys)
                }
                DatabaseKind::Mysql | DatabaseKind::Mariadb => line.rsplit_once('\t')?,
                DatabaseKind::Postgres => line.rsplit_once('|')?,
            };
            Some((name.to_string(), count.trim().parse().ok()?))
        })
        .collect()
}

/// A Redis command line that starts from the RDB in its directory: with the append-only file
/// on, Redis 7 would start empty from a missing AOF and ignore the RDB.
pub(super) fn from_snapshot(cmd: Option<Vec<String>>) -> Option<Vec<String>> {
    cmd.map(|mut words| {
        if let Some(i) = words.iter().position(|w| w == "--appendonly")
            && let Some(value) = words.get_mut(i + 1)
        {
            *value = "no".into();
        }
        words
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_read_from_psql_and_redis_lines() {
        let counts = parse_counts(
            DatabaseKind::Postgres,
            "public.notes|3\npublic.empty|0\nnoise\n",
        );
        assert_eq!(counts.len(), 2);
        assert_eq!(counts["public.notes"], 3);
        assert_eq!(counts["public.empty"], 0);
        let keys = parse_counts(
            DatabaseKind::Redis,
            "# Keyspace\r\ndb0:keys=12,expires=1,avg_ttl=0\r\ndb3:keys=2,expires=0,avg_ttl=0\r\n",
        );
        assert_eq!(keys.len(), 2);
        assert_eq!(keys["db0"], 12);
        assert_eq!(keys["db3"], 2);
    }

    #[test]
    fn a_snapshot_start_turns_the_append_only_file_off() {
        let cmd = vec!["redis-server", "--requirepass", "p", "--appendonly", "yes"];
        let cmd = from_snapshot(Some(cmd.into_iter().map(String::from).collect())).unwrap();
        assert_eq!(cmd[4], "no");
    }
}
