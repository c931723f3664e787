#!/usr/bin/env bash
# The test command: installs the Debian dependencies, configures, builds (Release) and runs the
# whole suite under CTest. Tests that need ../shared/data (or $AWQ_DATA) skip with a reason when
# it is absent. Extra arguments go to ctest (e.g. -R Tokenizer).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
jobs=$(nproc 2>/dev/null || echo 2)
cmake --preset release
cmake --build --preset release -j "$jobs"
ctest --test-dir build --output-on-failure -j "$jobs" "$@"
