#!/usr/bin/env bash
# Starts (once) a throwaway PostgreSQL server for the postgres sink's tests, listening on
# 127.0.0.1 and on a unix socket in its own directory, and prints its connection string.
# Usage: scripts/pg-test-server.sh [DIR]   (default /tmp/weir-pg; port $WEIR_PG_PORT or 55432)
#        eval "export WEIR_TEST_POSTGRES_URL='$(scripts/pg-test-server.sh)'"
set -euo pipefail
BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -z "$BIN" ]; then
  echo "pg-test-server: no PostgreSQL server binaries under /usr/lib/postgresql" >&2
  exit 1
fi
DIR=${1:-/tmp/weir-pg}
PORT=${WEIR_PG_PORT:-55432}
mkdir -p "$DIR"
as_pg() {
  # initdb refuses to run as root.
  if [ "$(id -u)" = 0 ]; then
    chown -R postgres "$DIR"
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}
if [ ! -f "$DIR/data/PG_VERSION" ]; then
  as_pg "$BIN/initdb" -D "$DIR/data" -A trust -U weir >"$DIR/initdb.log" 2>&1
fi
if ! as_pg "$BIN/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; then
  as_pg "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
    -o "-k $DIR -p $PORT -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
fi
echo "host=127.0.0.1 port=$PORT user=weir dbname=postgres"
