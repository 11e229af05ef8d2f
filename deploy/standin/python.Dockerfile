# STAND-IN for python:3.11-slim (deploy/local-images.sh): Debian bookworm's python3.11 in a venv
# whose bin is on PATH, as `python`, `python3` and `pip` are in the official image. (A symlinked
# venv python would not find the venv's site-packages: PATH it is.)
ARG BASE
FROM ${BASE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv \
    && rm -rf /var/lib/apt/lists/* \
    && python3.11 -m venv /usr/local/python
ENV PATH=/usr/local/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
CMD ["python3"]
