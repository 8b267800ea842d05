"""Alembic's entry point: migrations run on the connection ``bento_jupyter.registry.db.migrations`` hands in."""

from alembic import context

from bento_jupyter.registry.db.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()
