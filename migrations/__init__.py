"""Oodaloo's Alembic migrations. Installed from the wheel, this folder is the package
`oodaloo_migrations` (sync/db.py finds it either way); Alembic loads the scripts by path."""
