#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, clang with ASan + UBSan: the asan preset) and runs each for
# SECONDS, or with SECONDS = 0 only replays the seeds and the saved regression inputs (what CI
# does: seconds). Seeds come from ../shared/data (tokenizers, GGUF vocabularies, llama2.c files,
# texts), the family configs in tests/goldens, and small files made here (a safetensors file, a
# --save-search file of a tiny synthetic model). A finding stops with the input's path; copy it
# into fuzz/regressions/<target>/ with the fix, and every later run replays it.
#
#   scripts/fuzz.sh SECONDS [TARGET ...]    (default: every fuzz/fuzz_*.cpp)
# Prints, per target, the executions and the corpus size, then the total.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:?usage: scripts/fuzz.sh SECONDS [TARGET ...]}
shift
data=${AWQ_DATA:-../shared/data}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in fuzz/fuzz_*.cpp; do targets+=("$(basename "$f" .cpp)"); done
fi
command -v clang++ >/dev/null || { echo "fuzz.sh: clang++ is needed (apt-get install clang)" >&2; exit 2; }
cmake --preset asan >/dev/null
cmake --build --preset asan -j "$(nproc)" >/dev/null
# Undefined behaviour is a finding too, not a line in the log.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
work=build-asan/corpus
mkdir -p "$work"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Seeds, made fresh each run (the corpora grow under $work between runs).
seeds() {
  local t=$1 d=$tmp/seeds/$1
  mkdir -p "$d"
  case $t in
    fuzz_safetensors)
      # Two tensors (f32 [2,2], bf16 [3]) and metadata, as the format specifies.
      local h='{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"b":{"dtype":"BF16","shape":[3],"data_offsets":[16,22]}}'
      local n=${#h}
      printf '%b' "\\x$(printf %02x $((n & 255)))\\x$(printf %02x $((n >> 8)))\\0\\0\\0\\0\\0\\0" \
        >"$d/two.safetensors"
      printf '%s' "$h" >>"$d/two.safetensors"
      head -c 22 /dev/urandom >>"$d/two.safetensors"
      ;;
    fuzz_gguf) cp "$data"/tokenizers/llamacpp-vectors/*.gguf "$d/" 2>/dev/null || true ;;
    fuzz_config) for c in tests/goldens/*/config.json; do cp "$c" "$d/$(basename "$(dirname "$c")").json"; done ;;
    fuzz_tokenizer)
      for t in "$data"/tokenizers/*/tokenizer.json; do
        local n; n=$(basename "$(dirname "$t")")
        { cat "$t"; printf '\0'; cat "$(dirname "$t")/tokenizer_config.json" 2>/dev/null || true
          printf '\0Hello world <s> 12345 ünïcödé\n\tend'; } >"$d/$n"
      done
      ;;
    fuzz_llama2c) cp "$data"/models/stories260K/*.bin "$d/" 2>/dev/null || true ;;
    fuzz_calib)
      for f in "$data"/text/*.txt; do head -c 3000 "$f" >"$d/$(basename "$f")"; done
      printf '\003{"text": "one"}\n{"text": "two\\nlines"}\n"bare"\n' >"$d/lines.jsonl"
      ;;
    fuzz_search)
      if [ -x build/awq ]; then
        if build/awq synth --shape tiny --out "$tmp/tiny" >/dev/null 2>&1; then
          build/awq quantize --model "$tmp/tiny" --calib "$data/text/tinystories-valid-a.txt" \
            --calib-samples 4 --calib-seqlen 64 --out "$tmp/tiny-awq" \
            --save-search "$d/tiny.json" >/dev/null 2>&1 || true
        fi
      fi
      ;;
  esac
  ls "$d" >/dev/null
}

total=0
printf '%-18s %12s %8s\n' target executions corpus
for t in "${targets[@]}"; do
  bin=build-asan/$t
  [ -x "$bin" ] || { echo "fuzz.sh: no target $t" >&2; exit 2; }
  seeds "$t"
  mkdir -p "$work/$t"
  dirs=("$work/$t" "$tmp/seeds/$t")
  [ -d "fuzz/regressions/$t" ] && dirs+=("fuzz/regressions/$t")
  log=$tmp/$t.log
  opts=(-print_final_stats=1 -timeout=20 -rss_limit_mb=4096)
  if [ "$secs" -eq 0 ]; then
    # Replay only: every seed and regression input once (no mutation, nothing written).
    TMPDIR=$tmp "$bin" "${opts[@]}" -runs=0 "${dirs[@]}" >"$log" 2>&1 ||
      { cat "$log" >&2; echo "fuzz.sh: $t failed on a replayed input" >&2; exit 1; }
  else
    TMPDIR=$tmp "$bin" "${opts[@]}" -max_total_time="$secs" -artifact_prefix="$tmp/$t-" \
      "${dirs[@]}" >"$log" 2>&1 ||
      { tail -40 "$log" >&2; ls "$tmp/$t-"* >&2 2>/dev/null
        mkdir -p build-asan/findings
        cp "$tmp/$t-"* build-asan/findings/ 2>/dev/null || true
        echo "fuzz.sh: $t found a failure (input saved in build-asan/findings/)" >&2; exit 1; }
  fi
  n=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  total=$((total + ${n:-0}))
  printf '%-18s %12s %8s\n' "$t" "${n:-0}" "$(find "$work/$t" -type f | wc -l)"
done
printf '%-18s %12s\n' total "$total"
