#!/bin/sh
# Migrate, then run one uvicorn process (metrics are per process: scale with containers).
# On PostgreSQL, an advisory lock (migrations/env.py) queues replicas that start together.
set -e
lifeline migrate
exec lifeline serve
