#!/usr/bin/env bash
# AWQ against round-to-nearest on every family's real block shape (not in CI: ~1-3 min per preset
# on 2 cores). For each `awq synth` preset: a few layers of the real model's width in bf16, with
# activation-outlier channels (the case AWQ exists for: K channels of gain G in every norm, and K
# rows of every up projection G times larger, so down_proj's input has outliers too; Gemma's post
# norms ×16 so that its scaled, tied embedding does not swamp the blocks: synth.h), quantized W4
# g128 by RTN and by AWQ
# (AutoAWQ layout, as users get it), then the KL divergence of each to the bf16 model and the
# perplexities, on the bundled stories texts (tokenized by a synthetic byte-level tokenizer).
#   [OUTLIERS=K:G] [MLP_OUTLIERS=K:G] scripts/families-awq.sh [BUILD_DIR] [PRESET ...]
#   (defaults: 8:20 for both, every family preset)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
shift || true
awq=$build/awq
data=${AWQ_DATA:-../shared/data}
work=${AWQ_WORK:-$build/families-awq}
presets=("$@")
[ ${#presets[@]} -gt 0 ] || presets=(llama-3.2-1b llama-3.1-8b mistral-nemo-12b qwen3-0.6b qwen3-8b
  gemma-2-2b gemma-3-1b gemma-3-4b phi-3-mini phi-4-mini)
mkdir -p "$work"
head -c 400000 "$data/text/tinystories-valid-a.txt" >"$work/eval.txt"
printf '| preset | outliers K:G | RTN PPL | AWQ PPL | RTN KLD | AWQ KLD | AWQ/RTN KLD | quantize s |\n|---|---|---|---|---|---|---|---|\n'
for p in "${presets[@]}"; do
  m=$work/$p
  [ -d "$m" ] || "$awq" synth --shape "$p" --layers 2 --vocab 4096 --dtype bf16 --outliers "${OUTLIERS:-8:20}" \
    --mlp-outliers "${MLP_OUTLIERS:-${OUTLIERS:-8:20}}" --post-norm-gain 16 \
    --out "$m" >/dev/null
  q=(--group-size 128 --calib "$data/text/tinystories-train-head.txt" --calib-long skip --calib-samples 16 \
    --calib-seqlen 256)
  "$awq" quantize --model "$m" --method rtn --out "$m-rtn" --group-size 128 >/dev/null
  start=$(date +%s.%N)
  "$awq" quantize --model "$m" "${q[@]}" --out "$m-awq" --report "$m-awq.json" >/dev/null
  secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
  # --weights w4: the exact W4A16 path (the quantization is measured, not the run-time default).
  ev=(--weights w4 --text "$work/eval.txt" --ctx 256 --max-windows 64 --base "$m" --json)
  r=$("$awq" eval --model "$m-rtn" "${ev[@]}")
  a=$("$awq" eval --model "$m-awq" "${ev[@]}")
  field() { echo "$1" | grep -o "\"$2\": *[0-9.e+-]*" | head -1 | sed 's/.*: *//'; }
  rk=$(field "$r" kld_mean) ak=$(field "$a" kld_mean)
  awk -v p="$p" -v o="${OUTLIERS:-8:20}" -v rp="$(field "$r" perplexity)" -v ap="$(field "$a" perplexity)" \
    -v rk="$rk" -v ak="$ak" -v s="$secs" 'BEGIN { printf "| %s | %s | %.4g | %.4g | %.4g | %.4g | %.3f | %.0f |\n", p, o, rp, ap, rk, ak, (rk > 0 ? ak / rk : 0), s }'
done
