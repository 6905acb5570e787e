#!/usr/bin/env bash
# A local PostgreSQL 16 + pgvector server for tests, CI and trying the PostgreSQL store.
#
#   scripts/postgres.sh start   # prints the URL of a running server (starts one if needed)
#   scripts/postgres.sh stop
#   scripts/postgres.sh url     # the URL, whether or not the server runs
#
# No distribution package of pgvector is needed: the binaries come from the PyPI package
# pgserver (pinned in scripts/requirements-postgres.txt), installed with pip into a
# virtualenv under $VITRINA_PG_HOME on first use (about 11 MB). PostgreSQL refuses to run
# as root, so under root the server runs as the unprivileged user `vitrina-pg` (created on
# first use). It listens on 127.0.0.1 only, trusts local connections (a development
# server: never expose it), and keeps its data in $VITRINA_PG_HOME/data.
#
# Settings: VITRINA_PG_HOME (default /var/tmp/vitrina-postgres), VITRINA_PG_PORT (54329),
# VITRINA_PG_DATA (default $VITRINA_PG_HOME/data; a second data folder and port give a
# second server, as the outage test does).
set -euo pipefail

PG_HOME=${VITRINA_PG_HOME:-/var/tmp/vitrina-postgres}
PORT=${VITRINA_PG_PORT:-54329}
HERE=$(cd "$(dirname "$0")" && pwd)
VENV=$PG_HOME/venv
DATA=${VITRINA_PG_DATA:-$PG_HOME/data}
SOCKETS=$PG_HOME/run
LOG=$DATA.log
PG_USER=vitrina-pg
URL="postgres://postgres@127.0.0.1:$PORT/postgres"

say() { echo "postgres.sh: $*" >&2; }

# Runs a PostgreSQL binary as the server's owner.
as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u "$PG_USER" -- "$@"
    else
        "$@"
    fi
}

bin_dir() {
    local dirs=("$VENV"/lib/python3*/site-packages/pgserver/pginstall/bin)
    echo "${dirs[0]}"
}

install() {
    if [ ! -x "$(bin_dir)/postgres" ]; then
        say "installing PostgreSQL + pgvector (PyPI pgserver) into $VENV"
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$HERE/requirements-postgres.txt"
    fi
    if [ "$(id -u)" = 0 ] && ! id "$PG_USER" >/dev/null 2>&1; then
        say "creating the unprivileged user $PG_USER (PostgreSQL refuses to run as root)"
        useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_USER"
    fi
    chmod -R a+rX "$VENV"
}

start() {
    mkdir -p "$PG_HOME"
    chmod 755 "$PG_HOME"
    install
    local bin
    bin=$(bin_dir)
    if [ ! -f "$DATA/PG_VERSION" ]; then
        rm -rf "$DATA"
        mkdir -p "$DATA"
        [ "$(id -u)" = 0 ] && chown "$PG_USER" "$DATA"
        as_owner "$bin/initdb" -D "$DATA" -U postgres -A trust --no-sync >/dev/null
    fi
    mkdir -p "$SOCKETS"
    [ "$(id -u)" = 0 ] && chown "$PG_USER" "$SOCKETS"
    touch "$LOG"
    [ "$(id -u)" = 0 ] && chown "$PG_USER" "$LOG"
    if ! as_owner "$bin/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
        as_owner "$bin/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 \
            -o "-p $PORT -k $SOCKETS -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null 9>&- \
            || { say "PostgreSQL did not start; its log:"; tail -20 "$LOG" >&2; exit 1; }
    fi
    echo "$URL"
}

stop() {
    [ -x "$(bin_dir)/postgres" ] || return 0
    local bin
    bin=$(bin_dir)
    if [ -f "$DATA/PG_VERSION" ] && as_owner "$bin/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
        as_owner "$bin/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
        say "stopped"
    fi
}

case "${1:-}" in
    start)
        # One start at a time (tests run in parallel and each may call this).
        mkdir -p "$PG_HOME"
        exec 9>"$PG_HOME/.lock"
        flock 9
        start
        ;;
    stop) stop ;;
    url) echo "$URL" ;;
    *)
        echo "usage: $0 start|stop|url" >&2
        exit 2
        ;;
esac
