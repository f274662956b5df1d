# tests: tests/storage/test_db.py
"""The schema's MetaData and naming convention, shared by the table files of storage/models/."""
from __future__ import annotations

from sqlalchemy import MetaData

JID_PART = 1023

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)
