#!/usr/bin/env bash
# The test command: installs the Debian dependencies, configures, builds (Release) and runs the
# whole suite under CTest; then builds it again with clang's ASan + UBSan (the asan preset), runs
# it there (the data-heavy tests named below excepted) and replays the fuzz targets' seeds and
# regression inputs. Tests that need ../shared/data (or $AWQ_DATA) skip with a reason when it is
# absent. AWQ_SANITIZE=0 skips the sanitizer phase. Extra arguments go to both ctest runs (e.g.
# -R Tokenizer).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
jobs=$(nproc 2>/dev/null || echo 2)

# ctest in BUILD_DIR with a temp folder of its own, which the tests must leave empty, pass or fail.
run_ctest() {
  local dir=$1 scratch left
  shift
  scratch=$(mktemp -d "${TMPDIR:-/tmp}/awq-ctest.XXXXXX")
  TMPDIR=$scratch ctest --test-dir "$dir" --output-on-failure -j "$jobs" "$@"
  left=$(find "$scratch" -mindepth 1 -maxdepth 1 | head -5)
  if [ -n "$left" ]; then
    echo "the tests in $dir left files in $scratch:" >&2
    echo "$left" >&2
    exit 1
  fi
  rmdir "$scratch"
}

cmake --preset release
cmake --build --preset release -j "$jobs"
run_ctest build "$@"

[ "${AWQ_SANITIZE:-1}" = 0 ] && exit 0
# Under the sanitizers: everything but the tests that spend minutes on real-size data (multi-GB
# synthetic checkpoints, the stories260K AWQ tables, the AWQ-halves-RTN quality runs: 13 of the
# 20 minutes under ASan), the ~50 `awq quantize` runs of Resume.* and Shard.* (killed, resumed,
# sharded: about a minute each under ASan; Pipeline.InterruptedRunResumes... and
# Pipeline.ShardsMerge... take the same code through the sanitizers in process), GptqCli.* (the
# GptqPipeline.* and MoeAwq.* tests run GPTQ in process) and timing benchmarks, all of which ran
# above.
slow='EvalCli\.|Stories\.|Outliers\.|Resume\.|Shard\.|GptqCli\.|QuantSpeed|SpeedTest|Bench'
cmake --preset asan
cmake --build --preset asan -j "$jobs"
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 run_ctest build-asan -E "$slow" "$@"
bash scripts/fuzz.sh 0
