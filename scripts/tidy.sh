#!/usr/bin/env bash
# clang-tidy over every source file with the checks in .clang-tidy (needs a configured build
# directory for compile_commands.json). Prints the findings; exits 1 if there are any.
#
#   scripts/tidy.sh [BUILD_DIR]        (default build; cmake writes compile_commands.json there)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$here/build}"
[[ -f "$build/compile_commands.json" ]] || { echo "no $build/compile_commands.json (configure first)" >&2; exit 2; }
command -v clang-tidy >/dev/null || { echo "clang-tidy not installed (apt-get install clang-tidy)" >&2; exit 2; }
cd "$here"
out="$(find src -name '*.cpp' 2>/dev/null | sort |
  xargs -P "$(nproc)" -n 4 clang-tidy -p "$build" --quiet 2>/dev/null |
  grep -E '^[^ ].*: (warning|error):' || true)"
if [[ -n "$out" ]]; then
  sort -u <<<"$out"
  echo "clang-tidy: $(sort -u <<<"$out" | wc -l) findings" >&2
  exit 1
fi
echo "clang-tidy: clean ($(find src -name '*.cpp' 2>/dev/null | wc -l) files)"
