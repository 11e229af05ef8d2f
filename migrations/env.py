"""Alembic environment: the URL comes from the Config (set by `python -m app migrate`)
or from FACEAPI_DATABASE_URL."""

from alembic import context
from sqlalchemy import text

from app.core.db import make_engine
from app.storage.models import Base

config = context.config
# PostgreSQL advisory lock key taken for the whole upgrade: replicas that start together (docker
# compose up --scale api=N runs `migrate` in each) take turns; the later ones find the head
# already applied and do nothing.
MIGRATION_LOCK = 0x66616365  # "face"
target_metadata = Base.metadata


def database_url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from app.core.config import load_settings

    return load_settings().database_url


def run_migrations_offline() -> None:
    context.configure(url=database_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(database_url())
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=connection.dialect.name == "sqlite")
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                # released at the transaction's end; the revision is read after it is held
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
