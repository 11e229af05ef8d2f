#!/bin/bash
# STAND-IN entrypoint (deploy/local-images.sh) doing what the official postgres image's does:
# on an empty $PGDATA, initdb (UTF8: under SQL_ASCII psycopg returns bytes) with POSTGRES_USER
# and POSTGRES_PASSWORD, local connections trusted and remote ones by scram-sha-256, POSTGRES_DB
# created, listening on every address; then exec the command as the postgres user.
set -euo pipefail
if [ "${1:0:1}" = "-" ]; then set -- postgres "$@"; fi

if [ "$1" = postgres ] && [ "$(id -u)" = 0 ]; then
    # the volume may come in owned by root: hand it to postgres, then drop privileges
    mkdir -p "$PGDATA" /var/run/postgresql
    chown -R postgres:postgres "$(dirname "$PGDATA")" /var/run/postgresql
    chmod 700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
    : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}"
    user=${POSTGRES_USER:-postgres}
    db=${POSTGRES_DB:-$user}
    pwfile=$(mktemp)
    printf '%s' "$POSTGRES_PASSWORD" > "$pwfile"
    initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" -E UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=scram-sha-256 --no-instructions
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    {
        echo "listen_addresses = '*'"
        echo "unix_socket_directories = '/var/run/postgresql'"
    } >> "$PGDATA/postgresql.conf"
    # a server on the socket only while the database is created: nothing outside sees it yet
    pg_ctl -D "$PGDATA" -w -o "-c listen_addresses=''" start
    if [ "$db" != postgres ]; then
        createdb -U "$user" "$db"
    fi
    pg_ctl -D "$PGDATA" -m fast -w stop
    echo "PostgreSQL init process complete; ready for start up."
fi
exec "$@"
