#!/bin/sh
# The entrypoint of the test image that stands in for the official mariadb image: it honours
# the same interface (MARIADB_ROOT_PASSWORD, MARIADB_DATABASE, MARIADB_USER, MARIADB_PASSWORD,
# and the MYSQL_* names), initialises the data directory on first start (root and the user by
# password, over the network too) and runs the server as the mysql user.
set -eu
if [ "${1:-mariadbd}" != mariadbd ]; then
  exec "$@"
fi
datadir=/var/lib/mysql
root="${MARIADB_ROOT_PASSWORD:-${MYSQL_ROOT_PASSWORD:-}}"
db="${MARIADB_DATABASE:-${MYSQL_DATABASE:-}}"
user="${MARIADB_USER:-${MYSQL_USER:-}}"
password="${MARIADB_PASSWORD:-${MYSQL_PASSWORD:-}}"
mkdir -p "$datadir" /run/mysqld
chown -R mysql:mysql "$datadir" /run/mysqld
if [ ! -d "$datadir/mysql" ]; then
  if [ -z "$root" ]; then
    echo "MARIADB_ROOT_PASSWORD is not set" >&2
    exit 1
  fi
  mariadb-install-db --user=mysql --datadir="$datadir" --skip-test-db >/dev/null
  mariadbd --user=mysql --datadir="$datadir" --skip-networking --socket=/run/mysqld/init.sock &
  pid=$!
  i=0
  until mariadb-admin --socket=/run/mysqld/init.sock ping >/dev/null 2>&1; do
    i=$((i + 1))
    [ "$i" -lt 120 ] || { echo "the first start did not come up" >&2; exit 1; }
    sleep 0.5
  done
  {
    echo "ALTER USER 'root'@'localhost' IDENTIFIED BY '$root';"
    echo "CREATE USER 'root'@'%' IDENTIFIED BY '$root';"
    echo "GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;"
    if [ -n "$db" ]; then
      echo "CREATE DATABASE IF NOT EXISTS \`$db\`;"
    fi
    if [ -n "$user" ]; then
      echo "CREATE USER '$user'@'%' IDENTIFIED BY '$password';"
      [ -z "$db" ] || echo "GRANT ALL ON \`$db\`.* TO '$user'@'%';"
    fi
  } | mariadb --socket=/run/mysqld/init.sock
  mariadb-admin --socket=/run/mysqld/init.sock -uroot -p"$root" shutdown
  wait "$pid" || true
  echo "initialised $datadir"
fi
exec mariadbd --user=mysql --datadir="$datadir" --bind-address=0.0.0.0 --port=3306
