#!/usr/bin/env bash
# The main job, end to end: set up, build, then on the bundled real model (stories260K from
# ../shared/data, or $AWQ_DATA) convert it to a Hugging Face directory, quantize it with plain
# round-to-nearest and with AWQ, and evaluate all three (perplexity in both conventions, KL
# divergence against full precision), then generate a little text from the AWQ model.
# Usage: scripts/demo.sh [MODEL_DIR CALIB_TEXT EVAL_TEXT]  (defaults: the bundled model and texts)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc 2>/dev/null || echo 2)" --target awq
awq=build/awq
data=${AWQ_DATA:-../shared/data}
work=${AWQ_WORK:-build/demo}
mkdir -p "$work"

if [ $# -ge 3 ]; then
  model=$1 calib=$2 text=$3
  qargs=()
else
  [ -f "$data/models/stories260K/stories260K.bin" ] || {
    echo "demo: no bundled model at $data/models/stories260K (set AWQ_DATA, or pass MODEL_DIR CALIB_TEXT EVAL_TEXT)"; exit 1; }
  model=$work/stories260K
  $awq convert llama2c --model "$data/models/stories260K/stories260K.bin" \
    --tokenizer "$data/models/stories260K/tok512.bin" --out "$model"
  calib=$data/text/tinystories-train-head.txt
  text=$data/text/tinystories-valid-a.txt
  # stories260K's widths (64, 172) are not multiples of 32: zero-pad the MLP to 192 (exact) and use g32.
  qargs=(--pad-intermediate 64 --group-size 32)
fi

$awq inspect "$model"
$awq quantize --model "$model" --method rtn --out "$work/rtn" "${qargs[@]}"
$awq quantize --model "$model" --calib "$calib" --out "$work/awq" --report "$work/awq-report.json" "${qargs[@]}"
for conv in paper llamacpp; do
  for m in "$model" "$work/rtn" "$work/awq"; do
    $awq eval --model "$m" --text "$text" --convention "$conv" --base "$model"
  done
done
$awq generate --model "$work/awq" --prompt "Once upon a time" -n 64 --temperature 0
