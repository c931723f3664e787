#!/usr/bin/env bash
# awq bench and llama.cpp's llama-bench side by side on the TinyLlama-1.1B shape (random weights),
# in one session, with the commands docs/benchmarks.md reports.
#
# Usage: scripts/bench-vs-llamacpp.sh LLAMA_CPP_BUILD_DIR [WORK_DIR]
#   LLAMA_CPP_BUILD_DIR  an existing llama.cpp CPU build (holding bin/llama-bench and
#                        bin/llama-quantize). This script downloads and builds nothing.
#   WORK_DIR             where the models and results go (default build/bench-vs-llamacpp);
#                        the models (~5 GB) are made once and reused.
# Environment: AWQ (the awq binary, default build/awq), THREADS (default "1 2"), PROMPT (512),
#   GEN (128), REPEATS (3), SHAPE (tinyllama-1.1b).
#
# What runs:
#   1. awq synth      -> an f16 Hugging Face checkpoint of the shape (random weights)
#   2. awq export-gguf --type f16 -> the F16 GGUF; llama-quantize -> Q4_0 (output.weight Q6_K,
#      llama.cpp's default mix)
#   3. for each thread count: awq bench (f16, w4, w4a8; weights built in memory, W4 = RTN g128
#      asymmetric; with --breakdown) and llama-bench on the Q4_0 and F16 files, the same -p/-n
#   4. a summary table (needs jq)
set -euo pipefail
[ $# -ge 1 ] || { sed -n '2,20p' "$0"; exit 2; }
cd "$(dirname "$0")/.."
llama=$(cd "$1" && pwd)
work=${2:-build/bench-vs-llamacpp}
awq=${AWQ:-build/awq}
threads=${THREADS:-"1 2"}
p=${PROMPT:-512}
n=${GEN:-128}
r=${REPEATS:-3}
shape=${SHAPE:-tinyllama-1.1b}
for b in "$llama/bin/llama-bench" "$llama/bin/llama-quantize" "$awq"; do
  [ -x "$b" ] || { echo "bench-vs-llamacpp: $b not found or not executable" >&2; exit 1; }
done
"$awq" --help | grep -q export-gguf || { echo "bench-vs-llamacpp: $awq has no export-gguf" >&2; exit 1; }
mkdir -p "$work"
f16=$work/$shape-f16.gguf
q40=$work/$shape-q4_0.gguf
if [ ! -f "$f16" ]; then
  "$awq" synth --shape "$shape" --out "$work/$shape-hf"
  "$awq" export-gguf --model "$work/$shape-hf" --out "$f16" --type f16
  rm -rf "$work/$shape-hf"
fi
[ -f "$q40" ] || "$llama/bin/llama-quantize" "$f16" "$q40" Q4_0 2 >"$work/quantize.log" 2>&1

out=$work/results-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"
{
  echo "date: $(date -u +%FT%TZ)"
  echo "host: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), $(nproc) cores"
  echo "awq:  $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  echo "llama.cpp: $("$llama/bin/llama-bench" --help >/dev/null 2>&1 && echo "$llama")"
} | tee "$out/env.txt"
for t in $threads; do
  echo "== $t thread(s); load: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/env.txt"
  "$awq" bench --shape "$shape" -t "$t" -p "$p" -n "$n" -r "$r" --weights f16,w4,w4a8 --breakdown --json \
    >"$out/awq-t$t.json" 2>"$out/awq-t$t.log"
  "$llama/bin/llama-bench" -m "$q40" -m "$f16" -p "$p" -n "$n" -t "$t" -r "$r" -o json \
    >"$out/llama-t$t.json" 2>"$out/llama-t$t.log"
done
echo "== after; load: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/env.txt"

if command -v jq >/dev/null; then
  {
    echo "| engine | weights | threads | pp$p tok/s | tg$n tok/s | decode GB/s | % of measured BW |"
    echo "|---|---|---:|---:|---:|---:|---:|"
    for t in $threads; do
      jq -r --arg t "$t" '.bandwidth_gbs as $bw | .rows[] |
        "| awq.cpp | \(.weights) | \($t) | \(.prompt_tok_s*100|round/100) | \(.decode_tok_s*100|round/100) | \(.decode_gbs*10|round/10) | \(.roofline_fraction*1000|round/10)% |"' \
        "$out/awq-t$t.json"
      # llama.cpp: model_size is the file's tensor bytes; decode reads that less all but one row of
      # token_embd per token (6% of Q4_0's, 6% of F16's), so its GB/s here is an upper estimate.
      jq -r --arg t "$t" --slurpfile a "$out/awq-t$t.json" '
        group_by(.model_type)[] | (map(select(.n_gen == 0))[0]) as $pp | (map(select(.n_prompt == 0))[0]) as $tg |
        "| llama.cpp | \($pp.model_type | sub("llama 1B "; "")) | \($t) | \($pp.avg_ts*100|round/100) | \($tg.avg_ts*100|round/100) | \($tg.model_size*$tg.avg_ts/1e8|round/10) | \($tg.model_size*$tg.avg_ts/1e6/$a[0].bandwidth_gbs|round/10)% |"' \
        "$out/llama-t$t.json"
    done
    for t in $threads; do
      echo "measured bandwidth, $t thread(s): $(jq -r '.bandwidth_gbs*10|round/10' "$out/awq-t$t.json") GB/s;" \
        "awq bench load $(jq -r '"\(.load_before) before, \(.load_after) after"' "$out/awq-t$t.json");" \
        "CPU share prompt/decode: $(jq -r '[.rows[] | "\(.weights) \(.prompt_cpu_share*100|round)%/\(.decode_cpu_share*100|round)%"] | join(", ")' "$out/awq-t$t.json")"
    done
    for t in $threads; do
      echo
      echo "awq.cpp w4a8 decode, $t thread(s), per token (awq bench --breakdown):"
      echo "| part | MB | ms | GB/s |"
      echo "|---|---:|---:|---:|"
      jq -r '.rows[] | select(.weights == "w4a8") | .decode_breakdown[] |
        "| \(.name) | \(.bytes/1e5|round/10) | \(.ms*1000|round/1000) | \(.gbs*10|round/10) |"' "$out/awq-t$t.json"
    done
  } | tee "$out/summary.md"
fi
echo "results in $out"
