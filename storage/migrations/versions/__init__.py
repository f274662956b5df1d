# tests: tests/storage/test_db.py
"""Alembic revisions, one file each (Alembic skips this file)."""
