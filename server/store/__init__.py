"""SQLAlchemy 2 adapter: models, the engine, repositories and Alembic migrations."""
