# tests: tests/storage/test_db.py
"""Alembic migrations (a package so setuptools ships it; Alembic skips this file)."""
