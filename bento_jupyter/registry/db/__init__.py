"""The registry's metadata database: SQLAlchemy tables, queries and Alembic migrations (SQLite or PostgreSQL)."""
