#!/usr/bin/env bash
# The demo command of README.md: installs what is missing, builds, and runs the
# whole story (create, carry, verify, apply, check) on a local world.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
npm run --silent build
node --import tsx scripts/demo.ts
