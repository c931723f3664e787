#!/usr/bin/env bash
# MoE decode speed: awq bench against llama.cpp's llama-bench on a sparse shape (default the
# Qwen3-30B-A3B shape, random weights) cut to a few layers so that it fits in memory, in one
# session, interleaved: round i runs awq, then llama.cpp, so that a machine whose load drifts
# slows both alike; the summary gives each engine's median, min and max over the rounds.
#
# Usage: scripts/bench-moe-vs-llamacpp.sh LLAMA_CPP_BUILD_DIR [WORK_DIR]
#        scripts/bench-moe-vs-llamacpp.sh --node NODE_LLAMA_CPP_DIR [WORK_DIR]
#   LLAMA_CPP_BUILD_DIR  an existing llama.cpp CPU build holding bin/llama-bench and
#                        bin/llama-quantize. This script downloads and builds nothing.
#   --node DIR           instead, the prebuilt llama.cpp of the npm package node-llama-cpp (DIR:
#                        its node_modules/node-llama-cpp; for architectures c392e509 lacks, such
#                        as qwen3moe). Both engines then run the same file: awq quantize --method
#                        rtn --symmetric --group-size 32 and export-gguf write it as exact Q4_0
#                        (output and token_embd F16, which both engines read as they are: awq
#                        widens a Q8_0 head to f32); `awq bench --model FILE` runs its codes and
#                        scripts/llamacpp-decode-speed.mjs times llama.cpp's decode of it.
#   WORK_DIR             where the GGUF files and results go (default build/bench-moe-vs-llamacpp);
#                        the files are made once per shape and layer count and reused.
# Environment: AWQ (the awq binary, default build/awq), SHAPE (qwen3-30b-a3b; also
#   qwen1.5-moe-a2.7b, mixtral-8x7b), LAYERS (4), THREADS (2), GEN (64 decoded tokens),
#   ROUNDS (5), LM_HEAD (w4: awq's lm_head RTN W4, nearer llama.cpp's Q6_K output than f16 is, since
#   with a few layers the head is most of the bytes per token; f16: as AWQ checkpoints keep it).
#
# What runs:
#   1. awq synth --shape S --layers N --dtype bf16  -> a Hugging Face checkpoint (random weights)
#   2. awq export-gguf --type f16 -> F16 GGUF; llama-quantize q4_0 -> Q4_0 (llama.cpp's default
#      mix: output.weight Q6_K, the routers F32)
#   3. ROUNDS x { awq bench --shape S --layers N -p 0 -n GEN --weights w4 (the same shape built in
#      memory, experts RTN g128 asymmetric, a token reads its k experts);
#      llama-bench -m Q4_0 -p 0 -n GEN -t T }
#   4. a summary table of decode tokens/s (needs jq)
# Not run in CI: it needs a llama.cpp build, minutes of CPU and a few GB of disk per shape.
# llama.cpp must know the shape's architecture and run its decode: c392e509 predates qwen3moe,
# and its repacked Q4_0 expert product asserts in decode for qwen2moe (qwen1.5-moe-a2.7b) below 8
# threads; Mixtral (mixtral-8x7b, LAYERS=1: ~1 GB in Q4_0 per layer) runs there. The script stops
# with that message when llama.cpp cannot.
set -euo pipefail
[ $# -ge 1 ] || { sed -n '2,35p' "$0"; exit 2; }
cd "$(dirname "$0")/.."
node_pkg=
if [ "$1" = --node ]; then
  [ $# -ge 2 ] || { sed -n '2,35p' "$0"; exit 2; }
  node_pkg=$(cd "$2" && pwd)
  shift 2
  set -- "$node_pkg" "$@"
else
  llama=$(cd "$1" && pwd)
fi
work=${2:-build/bench-moe-vs-llamacpp}
awq=${AWQ:-build/awq}
shape=${SHAPE:-qwen3-30b-a3b}
layers=${LAYERS:-4}
t=${THREADS:-2}
n=${GEN:-64}
rounds=${ROUNDS:-5}
lm_head=${LM_HEAD:-w4}
die() { echo "bench-moe-vs-llamacpp: $*" >&2; exit 1; }
if [ -n "$node_pkg" ]; then
  # Both engines on one file (see --node above).
  [ -f "$node_pkg/dist/index.js" ] || die "$node_pkg is not a node-llama-cpp package directory"
  command -v node >/dev/null || die "node not found"
  command -v jq >/dev/null || die "jq not found (the summary needs it)"
  mkdir -p "$work"
  base=$work/$shape-l$layers
  q40=$base-rtn-q4_0-f16head.gguf
  if [ ! -f "$q40" ]; then
    rm -rf "$base-hf" "$base-rtn"
    "$awq" synth --shape "$shape" --layers "$layers" --dtype bf16 --out "$base-hf"
    "$awq" quantize --model "$base-hf" --method rtn --symmetric --group-size 32 --out "$base-rtn"
    "$awq" export-gguf --model "$base-rtn" --embeddings f16 --out "$q40"
    rm -rf "$base-hf" "$base-rtn"
  fi
  mjs=scripts/llamacpp-decode-speed.mjs
  out=$work/results-node-$shape-l$layers-$(date +%Y%m%d-%H%M%S)
  mkdir -p "$out"
  {
    echo "date: $(date -u +%FT%TZ)"
    echo "host: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), $(nproc) cores"
    echo "awq:  $(git rev-parse --short HEAD 2>/dev/null || echo '?') ($awq)"
    echo "llama.cpp: node-llama-cpp $(jq -r .version "$node_pkg/package.json") ($node_pkg)"
    echo "shape: $shape, $layers layers; $t thread(s); decode $n tokens; $rounds rounds"
    echo "file (both engines): $q40, $(stat -c %s "$q40") bytes"
  } | tee "$out/env.txt"
  for i in $(seq 1 "$rounds"); do
    echo "== round $i; load: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/env.txt"
    "$awq" bench --model "$q40" -t "$t" -p 0 -n "$n" -r 1 --weights w4 --json \
      >"$out/round$i-awq.json" 2>"$out/round$i-awq.log" || die "awq bench failed: $out/round$i-awq.log"
    NODE_LLAMA_CPP="$node_pkg" node "$mjs" "$q40" "$n" "$t" 1 >"$out/round$i-llama.json" \
      2>"$out/round$i-llama.log" || die "node-llama-cpp failed: $out/round$i-llama.log"
  done
  jq -s '[.[] | .rows[0].decode_tok_s]' "$out"/round*-awq.json >"$out/awq-runs.json"
  jq -s '[.[] | .tok_s]' "$out"/round*-llama.json >"$out/llama-runs.json"
  # shellcheck disable=SC2016 # a jq program
  stats='sort as $s | ($s | length) as $n |
    (if $n % 2 == 1 then $s[($n - 1) / 2] else ($s[$n / 2 - 1] + $s[$n / 2]) / 2 end) as $med |
    "\($med*100|round/100) | \($s[0]*100|round/100) | \($s[-1]*100|round/100) | \($n)"'
  {
    echo
    echo "| engine | weights (same file) | MB/token | decode tok/s (median) | min | max | rounds |"
    echo "|---|---|---:|---:|---:|---:|---:|"
    echo "| awq.cpp | Q4_0 codes on awq's W4 kernels | $(jq -r '.rows[0].bytes_per_token.total/1e5|round/10' "$out/round1-awq.json") | $(jq -r "$stats" "$out/awq-runs.json") |"
    echo "| llama.cpp $(jq -r .release "$out/round1-llama.json") | Q4_0 | - | $(jq -r "$stats" "$out/llama-runs.json") |"
  } | tee "$out/summary.md"
  echo "results in $out"
  exit 0
fi
for b in "$llama/bin/llama-bench" "$llama/bin/llama-quantize" "$awq"; do
  [ -x "$b" ] || die "$b not found or not executable"
done
"$awq" --help | grep -q export-gguf || die "$awq has no export-gguf"
"$awq" bench --help | grep -q -- --layers || die "$awq bench has no --layers"
case "$lm_head" in
  w4) head_flag=(--lm-head-w4) ;;
  f16) head_flag=() ;;
  *) die "LM_HEAD must be w4 or f16 (got '$lm_head')" ;;
esac
mkdir -p "$work"
base=$work/$shape-l$layers
f16=$base-f16.gguf
q40=$base-q4_0.gguf
if [ ! -f "$f16" ]; then
  rm -rf "$base-hf"
  "$awq" synth --shape "$shape" --layers "$layers" --dtype bf16 --out "$base-hf"
  "$awq" export-gguf --model "$base-hf" --type f16 --out "$f16" ||
    die "awq export-gguf could not write $shape as GGUF (see above)"
  rm -rf "$base-hf"
fi
# An architecture this llama.cpp does not know (llama-quantize and llama-bench both load the
# model) is one clear message, not a table of failures.
llama_failed() {  # LOG WHAT
  if grep -q "unknown model architecture" "$1"; then
    die "this llama.cpp ($llama) cannot load $shape: $(grep -o "unknown model architecture: '[^']*'" \
      "$1" | head -1); use a newer llama.cpp or SHAPE=mixtral-8x7b"
  fi
  # c392e509's repacked Q4_0 MUL_MAT_ID sizes its work buffer short by about 16 bytes per expert
  # (ggml-cpu-aarch64.cpp), which decode only survives when the per-thread padding covers it:
  # qwen2moe's 60 experts need 8 threads, Mixtral's 8 experts any.
  if grep -q "GGML_ASSERT(params->wsize" "$1"; then
    die "$2 hit llama.cpp's MUL_MAT_ID work-size assert ($1): a known bug of old builds" \
      "with many experts at few threads; use a newer llama.cpp or SHAPE=mixtral-8x7b"
  fi
  die "$2 failed: $1"
}
if [ ! -f "$q40" ]; then
  "$llama/bin/llama-quantize" "$f16" "$q40.tmp" q4_0 >"$base-quantize.log" 2>&1 ||
    llama_failed "$base-quantize.log" llama-quantize
  mv "$q40.tmp" "$q40"
fi
# One untimed token first, so that a file llama.cpp cannot run stops here.
"$llama/bin/llama-bench" -m "$q40" -p 0 -n 1 -r 1 -t "$t" >"$base-probe.log" 2>&1 ||
  llama_failed "$base-probe.log" llama-bench

out=$work/results-$shape-l$layers-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"
{
  echo "date: $(date -u +%FT%TZ)"
  echo "host: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), $(nproc) cores"
  echo "awq:  $(git rev-parse --short HEAD 2>/dev/null || echo '?') ($awq)"
  echo "llama.cpp: $llama"
  echo "shape: $shape, $layers layers; $t thread(s); decode $n tokens; $rounds rounds; awq lm_head $lm_head"
  echo "Q4_0 file: $(stat -c %s "$q40") bytes"
} | tee "$out/env.txt"
for i in $(seq 1 "$rounds"); do
  echo "== round $i; load: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/env.txt"
  "$awq" bench --shape "$shape" --layers "$layers" -t "$t" -p 0 -n "$n" -r 1 --weights w4 \
    "${head_flag[@]}" --json >"$out/round$i-awq.json" 2>"$out/round$i-awq.log" ||
    die "awq bench failed: $out/round$i-awq.log"
  "$llama/bin/llama-bench" -m "$q40" -p 0 -n "$n" -t "$t" -r 1 -o json >"$out/round$i-llama.json" \
    2>"$out/round$i-llama.log" || die "llama-bench failed: $out/round$i-llama.log"
done
echo "== after; load: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/env.txt"

if command -v jq >/dev/null; then
  # Per-round decode tokens/s of each engine, then median / min / max.
  jq -s '[.[] | .rows[0].decode_tok_s]' "$out"/round*-awq.json >"$out/awq-runs.json"
  jq -s '[.[] | .[] | select(.n_prompt == 0) | .avg_ts]' "$out"/round*-llama.json >"$out/llama-runs.json"
  # shellcheck disable=SC2016 # a jq program: $s and $n are jq's
  stats='sort as $s | ($s | length) as $n |
    (if $n % 2 == 1 then $s[($n - 1) / 2] else ($s[$n / 2 - 1] + $s[$n / 2]) / 2 end) as $med |
    "\($med*100|round/100) | \($s[0]*100|round/100) | \($s[-1]*100|round/100) | \($n)"'
  a0=$out/round1-awq.json
  {
    echo
    echo "| engine | weights | MB/token | decode tok/s (median) | min | max | rounds |"
    echo "|---|---|---:|---:|---:|---:|---:|"
    echo "| awq.cpp | w4 RTN g128, lm_head $lm_head | $(jq -r '.rows[0].bytes_per_token.total/1e5|round/10' "$a0") | $(jq -r "$stats" "$out/awq-runs.json") |"
    # llama-bench reports the file's size, not what a token reads (all experts are in the file).
    echo "| llama.cpp | Q4_0 (output Q6_K) | - | $(jq -r "$stats" "$out/llama-runs.json") |"
    echo
    echo "awq bench: $(jq -r '"\(.bandwidth_gbs*10|round/10) GB/s measured; roofline \(.rows[0].roofline_tok_s*10|round/10) tok/s; \(.rows[0].resident_bytes/1e6|round) MB of weights held"' "$a0")"
  } | tee "$out/summary.md"
fi
echo "results in $out"
