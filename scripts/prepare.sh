#!/usr/bin/env bash
# Run before the main job and the tests, so that each works as the first command in a fresh
# clone: installs the npm packages when missing and makes sure a WebGPU adapter exists.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -L node_modules ] && [ -d node_modules/webgpu ]; then
  # A node_modules linked from another checkout (e.g. a git worktree): npm ci would empty the
  # linked folder through the link, so it is left to that checkout.
  :
elif [ ! -d node_modules/webgpu ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
bash scripts/setup-vulkan.sh >/dev/null || bash scripts/setup-vulkan.sh
# The optional MPI addon for multi-process training (says what to install when MPI is missing).
node scripts/build-mpi.mjs
