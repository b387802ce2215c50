"""Alembic migrations for crank-node's schema, shipped inside the package.

Run them with ``crank-node db upgrade`` (or :func:`storage.schema.upgrade`);
``env.py`` runs on the connection :mod:`storage.schema` hands it, so the
engine's SQLite pragmas and ``BEGIN IMMEDIATE`` apply to migrations too.
"""
