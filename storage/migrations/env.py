# tests: tests/storage/test_db.py
"""Alembic environment for xmppd's schema (`storage.models.metadata`).

`Database.migrate()` passes its open connection in `config.attributes["connection"]` and runs the
migrations inside its transaction. Run by hand (developers, `alembic -c storage/alembic.ini ...`),
the URL comes from `-x url=...`, else `$XMPPD_DATABASE_URL`, else the ini's `sqlalchemy.url`.
"""
from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection, create_engine

from storage.models import metadata

config = context.config


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get("XMPPD_DATABASE_URL")
    url = url or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("no database URL: pass -x url=... or set XMPPD_DATABASE_URL")
    return url


def _migrate(conn: Connection) -> None:
    context.configure(
        connection=conn,
        target_metadata=metadata,
        compare_type=True,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=conn.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run() -> None:
    if context.is_offline_mode():
        context.configure(url=_url(), target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    conn = config.attributes.get("connection")
    if conn is not None:
        _migrate(conn)
        return
    engine = create_engine(_url())
    try:
        with engine.begin() as own:
            _migrate(own)
    finally:
        engine.dispose()


run()
