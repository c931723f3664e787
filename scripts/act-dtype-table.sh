#!/usr/bin/env bash
# What --act-dtype bf16/f16 changes against f32: the fraction of scaling groups whose chosen
# scale (mode and α) is the f32 run's, and perplexity / KL divergence to the unquantized model, on
# stories260K (the README's W4 g64 row: pad 192, --calib-long skip, fake-quant) and on a synthetic
# qwen3-0.6b-shaped model with activation outliers in both norms' and down_proj's inputs.
#   scripts/act-dtype-table.sh [BUILD_DIR]      (WORK=DIR keeps the models there; default: a temp dir)
set -euo pipefail
build="${1:-build}"
awq="$build/awq"
data="${AWQ_DATA:-$(dirname "$0")/../../shared/data}"
work="${WORK:-$(mktemp -d)}"
mkdir -p "$work"
[[ -x "$awq" ]] || { echo "no awq binary at $awq (build first)" >&2; exit 1; }
field() { grep -o "\"$1\": *[-0-9.e+]*" <<<"$2" | head -1 | sed 's/.*: *//'; }
# agree A.json B.json -> "same/applied" over every applied group of every layer
agree() {
  jq -rn --slurpfile a "$1" --slurpfile b "$2" '
    [$a[0].layers, $b[0].layers] | transpose | map([.[0].groups, .[1].groups] | transpose[])
    | map(select(.[0].applied)) | "\(map(select(.[0].choice == .[1].choice)) | length)/\(length)"'
}

echo "| model | act dtype | same choice as f32 | PPL | KLD | quantize s | peak RSS MiB | kept activations MiB |"
echo "|---|---|---|---|---|---|---|---|"
# table MODEL_NAME FP_DIR "quantize options" "eval options"
table() {
  local name=$1 fp=$2 q=$3 ev=$4 d
  for d in f32 bf16 f16; do
    local t0 t1 e
    t0=$(date +%s.%N)
    # shellcheck disable=SC2086
    "$awq" quantize --model "$fp" --out "$work/$name-$d" --act-dtype "$d" --no-resume \
      --report "$work/$name-$d.json" $q >/dev/null
    t1=$(date +%s.%N)
    # shellcheck disable=SC2086
    e="$("$awq" eval --model "$work/$name-$d" --base "$fp" --json $ev)"
    printf '| %s | %s | %s | %.4f | %.5f | %.1f | %.0f | %.1f |\n' "$name" "$d" \
      "$(agree "$work/$name-f32.json" "$work/$name-$d.json")" "$(field perplexity "$e")" \
      "$(field kld_mean "$e")" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" \
      "$(jq '.peak_rss_bytes / 1048576' "$work/$name-$d.json")" \
      "$(jq '.act_bytes / 1048576' "$work/$name-$d.json")"
  done
}

"$awq" convert llama2c --model "$data/models/stories260K/stories260K.bin" \
  --tokenizer "$data/models/stories260K/tok512.bin" --out "$work/stories-fp" >/dev/null
table stories260K "$work/stories-fp" \
  "--calib $data/text/tinystories-train-head.txt --calib-long skip --bits 4 --group-size 64 --pad-intermediate 64 --format fake-quant" \
  "--text $data/text/tinystories-valid-a.txt --ctx 512 --convention paper"

head -c 400000 "$data/text/tinystories-valid-a.txt" >"$work/eval.txt"
[[ -d "$work/qwen3-fp" ]] || "$awq" synth --shape qwen3-0.6b --layers 2 --vocab 4096 --dtype bf16 \
  --outliers 4:50 --mlp-outliers 4:50 --post-norm-gain 16 --out "$work/qwen3-fp" >/dev/null
table qwen3-0.6b-outliers "$work/qwen3-fp" \
  "--group-size 128 --calib $data/text/tinystories-train-head.txt --calib-long skip --calib-samples 16 --calib-seqlen 256" \
  "--text $work/eval.txt --ctx 256 --max-windows 64"
