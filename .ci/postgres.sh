#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests of the shared store: on a free loopback port, in a
# folder of its own, run by a user that is not root (the `postgres` system user when this runs as
# root), with TLS (a test CA made here, when openssl is there) and a user with a password.
#
#   bash .ci/postgres.sh bindir      prints the folder of initdb, pg_ctl and psql (fails when none)
#   bash .ci/postgres.sh start DIR   starts a server in DIR (an empty folder) and prints its URL,
#                                    postgres://bbb:<password>@127.0.0.1:<port>/bbb; DIR/ca.pem
#                                    is the CA of its certificate (sslmode=verify-full)
#   bash .ci/postgres.sh restart DIR stops it (fast: every session is cut) and starts it again on
#                                    the same port, for the tests of a server restarting mid-run
#   bash .ci/postgres.sh stop DIR    stops it and removes DIR
#
# Everything but the URL goes to stderr. It listens on 127.0.0.1 only.
set -euo pipefail

bindir() {
  local d
  for d in "$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")" $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/psql" ]; then
      echo "$d"
      return
    fi
  done
  return 1
}

# Runs a command as the server's user: as it is when not root, else as `postgres`.
as_owner() {
  if [ "$(id -u)" -ne 0 ]; then
    "$@"
  elif command -v runuser >/dev/null 2>&1; then
    runuser -u "$owner" -- "$@"
  else
    su -s /bin/sh "$owner" -c "$(printf '%q ' "$@")"
  fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null \
    || node -e 'const s = require("net").createServer(); s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close() })'
}

# Makes a CA and a server certificate for 127.0.0.1 and localhost, signed by it.
make_certs() {
  local dir=$1
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3 -subj "/CN=bedrock-batch-bridge test CA" \
    -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=localhost" \
    -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n' >"$dir/server.ext"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial -days 3 \
    -extfile "$dir/server.ext" -out "$dir/server.crt" 2>/dev/null
  rm -f "$dir/ca.key" "$dir/server.csr" "$dir/server.ext" "$dir/ca.srl"
  chmod 600 "$dir/server.key"
  chmod 644 "$dir/ca.pem" "$dir/server.crt"
}

start() {
  local dir=${1:?usage: postgres.sh start DIR}
  local bin port password tls=()
  bin=$(bindir) || { echo "PostgreSQL's initdb and pg_ctl were not found (apt-get install postgresql)" >&2; exit 1; }
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  owner=$(id -un)
  if [ "$(id -u)" -eq 0 ]; then
    owner=postgres
    id -u "$owner" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$owner" >&2
  fi
  port=$(free_port)
  password=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
  if command -v openssl >/dev/null 2>&1 && make_certs "$dir"; then
    tls=(-c ssl=on -c "ssl_cert_file=$dir/server.crt" -c "ssl_key_file=$dir/server.key")
  fi
  chmod 755 "$dir"
  [ "$(id -u)" -ne 0 ] || chown -R "$owner" "$dir"
  # The server's user may not enter the caller's folder.
  cd "$dir"
  as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200 ${tls[*]}" start >&2 \
    || { cat "$dir/server.log" >&2; exit 1; }
  echo "$port" >"$dir/port"
  as_owner "$bin/psql" -h "$dir" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -q \
    -c "CREATE ROLE bbb LOGIN CREATEDB PASSWORD '$password'" -c "CREATE DATABASE bbb OWNER bbb" >&2
  echo "postgres://bbb:$password@127.0.0.1:$port/bbb"
}

stop() {
  local dir=${1:?usage: postgres.sh stop DIR}
  [ -d "$dir/data" ] || { rm -rf "$dir"; return 0; }
  local bin
  bin=$(bindir) || true
  owner=$(stat -c %U "$dir/data")
  cd "$dir"
  [ -z "$bin" ] || as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >&2 || true
  cd /
  rm -rf "$dir"
}

restart() {
  local dir=${1:?usage: postgres.sh restart DIR}
  local bin
  bin=$(bindir) || { echo "PostgreSQL's pg_ctl was not found" >&2; exit 1; }
  owner=$(stat -c %U "$dir/data")
  cd "$dir"
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -m fast -w -t 60 restart >&2
}

owner=""
case "${1:-}" in
  bindir) bindir ;;
  start) start "${2:-}" ;;
  restart) restart "${2:-}" ;;
  stop) stop "${2:-}" ;;
  *) echo "usage: postgres.sh bindir | start DIR | restart DIR | stop DIR" >&2; exit 2 ;;
esac
