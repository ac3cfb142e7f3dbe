"""Persistence: SQLAlchemy models + Alembic, the encrypted blob store, the audit log."""
