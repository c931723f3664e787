#!/usr/bin/env bash
# The stories260K quality table: FP / RTN / AWQ perplexity (paper and llama.cpp conventions) and KL
# divergence against FP, for the settings AutoAWQ v0.2.9 was run with (MLP zero-padded 172 -> 192,
# calibrated on the first 128 stories of tinystories-train-head.txt, default duo scaling and
# clipping), plus per-channel groups on the unpadded model. Prints a Markdown table.
#
#   scripts/stories-table.sh [BUILD_DIR] [-- extra awq quantize options, e.g. --scale-mode duo]
#
# Needs the shared data (AWQ_DATA, default ../shared/data beside the checkout).
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$here/build}"
shift || true
[[ "${1:-}" == "--" ]] && shift
extra=("$@")
awq="$build/awq"
data="${AWQ_DATA:-$here/../shared/data}"
work="$(mktemp -d "${TMPDIR:-/tmp}/stories-table.XXXXXX")"
trap 'rm -rf "$work"' EXIT

[[ -x "$awq" ]] || { echo "no awq binary at $awq (build first)" >&2; exit 1; }
[[ -f "$data/models/stories260K/stories260K.bin" ]] || { echo "shared data not found under $data" >&2; exit 1; }

calib="${CALIB:-$data/text/tinystories-train-head.txt}"  # CALIB=FILE: calibrate on another text
calib_long="${CALIB_LONG:-skip}"  # CALIB_LONG=split|skip|truncate
text="${TEXT:-$data/text/tinystories-valid-a.txt}"  # TEXT=FILE: evaluate on another text

"$awq" convert llama2c --model "$data/models/stories260K/stories260K.bin" \
  --tokenizer "$data/models/stories260K/tok512.bin" --out "$work/fp" >/dev/null

# field NAME JSON: a number from awq eval --json output.
field() { grep -o "\"$1\": *[-0-9.e+]*" <<<"$2" | head -1 | sed 's/.*: *//'; }

# eval DIR -> "paper llamacpp kld"
evaluate() {
  local p l
  p="$("$awq" eval --model "$1" --text "$text" --ctx 512 --convention paper --base "$work/fp" --json)"
  l="$("$awq" eval --model "$1" --text "$text" --ctx 512 --convention llamacpp --json)"
  printf '%.4f %.4f %.5f' "$(field perplexity "$p")" "$(field perplexity "$l")" "$(field kld_mean "$p")"
}

fp_p="$("$awq" eval --model "$work/fp" --text "$text" --ctx 512 --convention paper --json)"
fp_l="$("$awq" eval --model "$work/fp" --text "$text" --ctx 512 --convention llamacpp --json)"

echo "| setting | FP (paper / llama.cpp) | RTN paper | RTN llama.cpp | RTN KLD | AWQ paper | AWQ llama.cpp | AWQ KLD | AutoAWQ paper | AWQ time |"
echo "|---|---|---|---|---|---|---|---|---|---|"
fp="$(printf '%.4f / %.4f' "$(field perplexity "$fp_p")" "$(field perplexity "$fp_l")")"

# row LABEL BITS GROUP PAD AUTOAWQ
row() {
  local label=$1 bits=$2 group=$3 pad=$4 ref=$5 padopt=()
  [[ "$pad" != 0 ]] && padopt=(--pad-intermediate "$pad")
  "$awq" quantize --model "$work/fp" --out "$work/rtn" --method rtn --bits "$bits" --group-size "$group" \
    --format fake-quant "${padopt[@]}" >/dev/null
  local t0 t1
  t0=$(date +%s.%N)
  # --calib-long skip: AutoAWQ's calibration (13 of the 128 stories are longer than 512 tokens).
  "$awq" quantize --model "$work/fp" --out "$work/awq" --calib "$calib" --calib-long "$calib_long" --bits "$bits" \
    --group-size "$group" --format fake-quant "${padopt[@]}" --report "$work/report.json" "${extra[@]}" \
    >/dev/null
  t1=$(date +%s.%N)
  local rp rl rk ap al ak
  read -r rp rl rk <<<"$(evaluate "$work/rtn")"
  read -r ap al ak <<<"$(evaluate "$work/awq")"
  printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %.1f s |\n' "$label" "$fp" "$rp" "$rl" "$rk" "$ap" "$al" \
    "$ak" "$ref" "$(awk "BEGIN { print $t1 - $t0 }")"
}

row "W4 g64 (pad 192)" 4 64 64 4.8143
row "W4 g32 (pad 192)" 4 32 64 4.6577
row "W3 g64 (pad 192)" 3 64 64 7.4351
row "W3 g32 (pad 192)" 3 32 64 6.3660
row "W4 per-channel (172)" 4 -1 0 -
row "W3 per-channel (172)" 3 -1 0 -
