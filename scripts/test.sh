#!/usr/bin/env bash
# Set up (scripts/setup.sh), then lint, type-check and run every test tier that can run here:
# unit tests with fakes, and integration tests against a real Mosquitto broker and the real models.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== ruff" && .venv/bin/ruff check edge tests
echo "== mypy" && .venv/bin/mypy
echo "== pytest" && .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
