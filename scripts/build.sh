#!/usr/bin/env bash
# Installs what is missing (scripts/setup.sh) and builds sdinterp into build/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$(nproc)"
