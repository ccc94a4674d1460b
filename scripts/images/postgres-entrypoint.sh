#!/bin/sh
# The entrypoint of the test image that stands in for the official postgres image: it honours
# the same interface (POSTGRES_PASSWORD, POSTGRES_USER, POSTGRES_DB, PGDATA), initialises the
# cluster on first start (local connections trusted, network ones by password) and runs the
# server as the postgres user.
set -eu
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
export PGDATA="${PGDATA:-/var/lib/postgresql/data}"
if [ "${1:-postgres}" != postgres ]; then
  exec "$@"
fi
mkdir -p "$PGDATA" /run/postgresql
chown -R postgres:postgres "$PGDATA" /run/postgresql
chmod 700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo "POSTGRES_PASSWORD is not set" >&2
    exit 1
  fi
  user="${POSTGRES_USER:-postgres}"
  db="${POSTGRES_DB:-$user}"
  pwfile=$(mktemp)
  printf '%s' "$POSTGRES_PASSWORD" >"$pwfile"
  chown postgres "$pwfile"
  runuser -u postgres -- "$bin/initdb" -D "$PGDATA" -U "$user" --pwfile="$pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
  if [ "$db" != postgres ]; then
    runuser -u postgres -- "$bin/pg_ctl" -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
    runuser -u postgres -- psql -q -U "$user" -d postgres -c "CREATE DATABASE \"$db\""
    runuser -u postgres -- "$bin/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null
  fi
  echo "initialised $PGDATA for $user"
fi
exec runuser -u postgres -- "$bin/postgres" -D "$PGDATA"
