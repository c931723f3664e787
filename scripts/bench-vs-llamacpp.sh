#!/usr/bin/env bash
# awq.cpp against llama.cpp on the TinyLlama-1.1B shape (random weights), interleaved: every round
# runs each awq.cpp row and then each llama.cpp row for every thread count, so that a machine
# whose speed drifts (this VM's bandwidth moves by tens of percent within minutes) slows both
# engines alike; the summary gives each row's median and min-max over the rounds. The README's
# speed table is this script's summary.md.
#
# Usage: scripts/bench-vs-llamacpp.sh LLAMA_CPP_BUILD_DIR [WORK_DIR]
#   LLAMA_CPP_BUILD_DIR  an existing llama.cpp CPU build (bin/llama-bench, bin/llama-quantize).
#                        This script downloads and builds nothing.
#   WORK_DIR             models and results (default build/bench-vs-llamacpp); the GGUF files
#                        (~3 GB) are made once and reused.
# Environment: AWQ (the awq binary, default build/awq), THREADS ("1 2"), PROMPT (512), GEN (128),
#   DEPTHS ("0 512 2048": decode after that many tokens of context), ROUNDS (3), SHAPE
#   (tinyllama-1.1b), FORMS (awq.cpp weight forms, "w4a8 w4"), NODE_LLAMA_CPP (optional: the
#   node_modules/node-llama-cpp directory of the npm package, whose prebuilt newer llama.cpp then
#   runs the same Q4_0 file too, through scripts/llamacpp-decode-speed.mjs), LLAMA_CPP_COMMIT (the
#   commit to print when llama-bench reports "unknown", as a build from a source snapshot does).
#
# What runs:
#   1. awq synth -> an f16 checkpoint of the shape; awq export-gguf --type f16 -> the F16 GGUF;
#      llama-quantize -> Q4_0 (llama.cpp's default mix: output.weight Q6_K)
#   2. ROUNDS x THREADS x {
#        awq bench --shape S -p PROMPT -n 0 (prefill) and -p 0 -n GEN -d D for each depth, one
#          run each (-r 1), every form in FORMS (weights built in memory: RTN g128 asymmetric);
#        llama-bench on the Q4_0 file: -p PROMPT -n GEN, and for each depth D > 0 -p D and
#          -pg D,GEN (c392e509 has no -d: decode after D tokens = GEN / (time of pg D,GEN - time
#          of pp D), a difference of two timed runs, so the least precise number here);
#        node-llama-cpp (if set): prefill PROMPT, and decode GEN after each depth }
#   3. summary.md: tokens/s, median (min-max) over the rounds, per engine, test and thread count;
#      awq.cpp's decode rows also give the fraction of the measured bandwidth (awq bench's median
#      of interleaved probes). Needs jq.
# Not run in CI: it needs a llama.cpp build, ~10 minutes of a quiet machine and 3 GB of disk.
set -euo pipefail
[ $# -ge 1 ] || { sed -n '2,33p' "$0"; exit 2; }
cd "$(dirname "$0")/.."
llama=$(cd "$1" && pwd)
work=${2:-build/bench-vs-llamacpp}
awq=${AWQ:-build/awq}
threads=${THREADS:-"1 2"}
p=${PROMPT:-512}
n=${GEN:-128}
depths=${DEPTHS:-"0 512 2048"}
rounds=${ROUNDS:-3}
shape=${SHAPE:-tinyllama-1.1b}
forms=${FORMS:-"w4a8 w4"}
node_pkg=${NODE_LLAMA_CPP:-}
die() { echo "bench-vs-llamacpp: $*" >&2; exit 1; }
for b in "$llama/bin/llama-bench" "$llama/bin/llama-quantize" "$awq"; do
  [ -x "$b" ] || die "$b not found or not executable"
done
command -v jq >/dev/null || die "jq not found (the results are JSON)"
"$awq" bench --help | grep -q -- --depth || die "$awq bench has no --depth"
if [ -n "$node_pkg" ]; then
  [ -f "$node_pkg/dist/index.js" ] || die "$node_pkg is not a node-llama-cpp package directory"
  command -v node >/dev/null || die "node not found"
fi
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
rows=$out/rows.jsonl  # one line per measurement: {engine, form, threads, test, tok_s[, roofline]}
{
  echo "date: $(date -u +%FT%TZ)"
  echo "host: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), $(nproc) cores"
  echo "awq:  $(git rev-parse --short HEAD 2>/dev/null || echo '?') ($awq)"
  echo "llama.cpp: $llama (commit ${LLAMA_CPP_COMMIT:-$("$llama/bin/llama-bench" -m "$q40" -p 1 -n 0 -r 1 \
    -o json 2>/dev/null | jq -r '.[0].build_commit // "?"')})"
  [ -z "$node_pkg" ] || echo "node-llama-cpp: $(jq -r .version "$node_pkg/package.json"), llama.cpp $(jq -r .tag "$node_pkg/llama/llama.cpp.info.json")"
  echo "shape $shape; prompt $p, decode $n after depths $depths; threads $threads; $rounds rounds"
} | tee "$out/env.txt"

awq_row() {  # awq_row T LOG_NAME ARGS...: one awq bench run, its rows appended to $rows
  local t=$1 name=$2
  shift 2
  local fl
  fl=$(echo "$forms" | tr ' ' ',')
  "$awq" bench --shape "$shape" -t "$t" -r 1 --weights "$fl" --json "$@" >"$out/$name.json" \
    2>"$out/$name.log" || die "awq bench failed: $out/$name.log"
}
for i in $(seq 1 "$rounds"); do
  for t in $threads; do
    echo "== round $i, $t thread(s); load: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/env.txt"
    awq_row "$t" "r$i-t$t-awq-pp" -p "$p" -n 0
    jq -c --arg t "$t" '.rows[] | {engine: "awq.cpp", form: .weights, threads: ($t|tonumber),
      test: "pp", tok_s: .prompt_tok_s}' "$out/r$i-t$t-awq-pp.json" >>"$rows"
    for d in $depths; do
      awq_row "$t" "r$i-t$t-awq-d$d" -p 0 -n "$n" -d "$d"
      jq -c --arg t "$t" --arg d "$d" '.rows[] | {engine: "awq.cpp", form: .weights,
        threads: ($t|tonumber), test: "tg@\($d)", tok_s: .decode_tok_s,
        roofline: .roofline_fraction}' "$out/r$i-t$t-awq-d$d.json" >>"$rows"
    done
    lb=(-m "$q40" -p "$p" -n "$n" -t "$t" -r 1 -o json)
    for d in $depths; do [ "$d" -gt 0 ] && lb+=(-p "$d" -pg "$d,$n"); done
    "$llama/bin/llama-bench" "${lb[@]}" >"$out/r$i-t$t-llama.json" 2>"$out/r$i-t$t-llama.log" ||
      die "llama-bench failed: $out/r$i-t$t-llama.log"
    # pp P and tg N as measured; tg after D = N / (seconds of pg D,N - seconds of pp D).
    jq -c --arg t "$t" --arg p "$p" --arg n "$n" --arg depths "$depths" '
      def secs(np; ng): map(select(.n_prompt == np and .n_gen == ng))[0].avg_ns / 1e9;
      . as $r | ($t|tonumber) as $th | ($p|tonumber) as $P | ($n|tonumber) as $N |
      {engine: "llama.cpp", form: "q4_0", threads: $th, test: "pp", tok_s: ($P / ($r | secs($P; 0)))},
      ($depths | split(" ") | map(select(. != "") | tonumber)[] |
        if . == 0 then {engine: "llama.cpp", form: "q4_0", threads: $th, test: "tg@0",
                        tok_s: ($N / ($r | secs(0; $N)))}
        else . as $D | {engine: "llama.cpp", form: "q4_0", threads: $th, test: "tg@\($D)",
                        tok_s: ($N / (($r | secs($D; $N)) - ($r | secs($D; 0))))} end)' \
      "$out/r$i-t$t-llama.json" >>"$rows"
    if [ -n "$node_pkg" ]; then
      for d in $depths; do
        pp=0
        [ "$d" = "${depths%% *}" ] && pp=$p  # prefill once per round
        NODE_LLAMA_CPP="$node_pkg" node scripts/llamacpp-decode-speed.mjs "$q40" "$n" "$t" 1 "$d" "$pp" \
          >"$out/r$i-t$t-node-d$d.json" 2>"$out/r$i-t$t-node-d$d.log" ||
          die "node-llama-cpp failed: $out/r$i-t$t-node-d$d.log"
        jq -c '{engine: "llama.cpp (node-llama-cpp \(.release | sub(".*@"; "")))", form: "q4_0",
          threads, test: (if .test == "pp" then "pp" else "tg@\(.depth)" end), tok_s}' \
          "$out/r$i-t$t-node-d$d.json" >>"$rows"
      done
    fi
  done
done
echo "== after; load: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/env.txt"

# Summary: one line per engine/form, one column per test and thread count.
jq -rs --arg p "$p" --arg n "$n" '
  def med: sort | if length % 2 == 1 then .[(length - 1) / 2] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  def r1: . * 10 | round / 10;
  (map({threads, test}) | unique | sort_by(.threads, (.test | if . == "pp" then -1 else (sub("tg@"; "") | tonumber) end))) as $cols |
  ("| engine | weights | " + ($cols | map(if .test == "pp" then "pp\($p), \(.threads)t" else "tg\($n) after \(.test | sub("tg@"; "")), \(.threads)t" end) | join(" | ")) + " |"),
  ("|---|---|" + ($cols | map("---:") | join("|")) + "|"),
  (group_by(.engine, .form)[] | . as $g |
    "| \($g[0].engine) | \($g[0].form) | " +
    ($cols | map(. as $c | [$g[] | select(.threads == $c.threads and .test == $c.test)] |
      if length == 0 then "-" else
        (map(.tok_s)) as $v | ($v | med | r1 | tostring) + " (" + ($v | min | r1 | tostring) + "-" + ($v | max | r1 | tostring) + ")" +
        (if .[0].roofline then ", " + ((map(.roofline) | med) * 100 | round | tostring) + "% BW" else "" end)
      end) | join(" | ")) + " |")
' "$rows" | tee "$out/summary.md"
echo "tok/s, median (min-max) of $rounds interleaved rounds; awq.cpp decode: % of the bandwidth awq bench measured (median of probes interleaved with its runs)" | tee -a "$out/summary.md"
echo "results in $out"
