#!/usr/bin/env bash
# The test command of README.md: installs what is missing, then typecheck, lint and every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
npm run --silent check
