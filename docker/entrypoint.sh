#!/bin/sh
# Migrate, then run one uvicorn process (metrics are per process: scale with containers).
# On PostgreSQL, Alembic's version-table lock serialises concurrent migrations of replicas.
set -e
lifeline migrate
exec lifeline serve
