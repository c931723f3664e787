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
# The tests write only under their own temp folder and must leave it empty, pass or fail.
scratch=$(mktemp -d "${TMPDIR:-/tmp}/awq-ctest.XXXXXX")
TMPDIR=$scratch ctest --test-dir build --output-on-failure -j "$jobs" "$@"
left=$(find "$scratch" -mindepth 1 -maxdepth 1 | head -5)
if [ -n "$left" ]; then
  echo "the tests left files in $scratch:" >&2
  echo "$left" >&2
  exit 1
fi
rmdir "$scratch"
