#!/usr/bin/env bash
# The GGUF perplexity table: stories260K full precision (F32 and F16 GGUF), RTN and AWQ (W4 g32,
# MLP padded 172 -> 192) exported as Q4_1, each measured by awq.cpp (on the Hugging Face directory
# and on the GGUF file, paper and llama.cpp conventions) and by llama.cpp's llama-perplexity on the
# GGUF file (-ub 16 and its default -ub 512). Prints a Markdown table.
#
#   scripts/gguf-table.sh [BUILD_DIR] [LLAMA_CPP_BIN_DIR]
#
# BUILD_DIR holds the `awq` binary (default: build). LLAMA_CPP_BIN_DIR holds llama-perplexity
# (default: ../llamacpp/build/bin beside the checkout); without it the llama.cpp columns read "—".
# Nothing is downloaded or built. Needs the shared data (AWQ_DATA, default ../shared/data).
# THREADS (default 2) is awq's thread count; LLAMA_THREADS (default 1) llama-perplexity's: on a
# shared 2-core machine its 2-thread run at -ub 16 was 10x slower than 1 thread (thread handoffs
# per 16-token batch). About 15 minutes on 2 cores.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$here/build}"
llama="${2:-$here/../llamacpp/build/bin}"
threads="${THREADS:-2}"
llama_threads="${LLAMA_THREADS:-1}"
awq="$build/awq"
data="${AWQ_DATA:-$here/../shared/data}"
work="$(mktemp -d "${TMPDIR:-/tmp}/gguf-table.XXXXXX")"
trap 'rm -rf "$work"' EXIT

[[ -x "$awq" ]] || { echo "no awq binary at $awq (build first)" >&2; exit 1; }
[[ -f "$data/models/stories260K/stories260K.bin" ]] || { echo "shared data not found under $data" >&2; exit 1; }
ppl_bin="$llama/llama-perplexity"
have_llama=1
[[ -x "$ppl_bin" ]] || { have_llama=0; echo "no llama-perplexity in $llama: llama.cpp columns skipped" >&2; }

calib="$data/text/tinystories-train-head.txt"
text="$data/text/tinystories-valid-a.txt"
q=(--pad-intermediate 64 --group-size 32 -t "$threads")

"$awq" convert llama2c --model "$data/models/stories260K/stories260K.bin" \
  --tokenizer "$data/models/stories260K/tok512.bin" --out "$work/fp" >/dev/null
# (The vLLM tensor-parallel shape warnings do not apply to a 260K model: filtered out.)
"$awq" quantize --model "$work/fp" --method rtn "${q[@]}" --out "$work/rtn" \
  2> >(grep -v "vLLM's awq_marlin" >&2) >/dev/null
# --calib-long skip: the 94 blocks of AutoAWQ's calibration, as the stories table and the
# documented GGUF table were made.
"$awq" quantize --model "$work/fp" --calib "$calib" --calib-long skip "${q[@]}" --out "$work/awq" \
  2> >(grep -v "vLLM's awq_marlin" >&2) >/dev/null
"$awq" export-gguf --model "$work/fp" --type f32 --out "$work/fp-f32.gguf" >/dev/null
"$awq" export-gguf --model "$work/fp" --type f16 --out "$work/fp-f16.gguf" >/dev/null
"$awq" export-gguf --model "$work/rtn" --type q4_1 --out "$work/rtn-q4_1.gguf" >/dev/null
"$awq" export-gguf --model "$work/awq" --type q4_1 --out "$work/awq-q4_1.gguf" >/dev/null

# awq_ppl MODEL CONVENTION -> perplexity from awq eval --json
awq_ppl() {
  # native: the dequantized weights, exactly what the file holds (the default w4a8 rounds activations).
  "$awq" eval --model "$1" --weights native --text "$text" --ctx 512 --convention "$2" -t "$threads" --json |
    grep -o '"perplexity": *[-0-9.e+]*' | head -1 | sed 's/.*: *//' | xargs printf '%.4f'
}

# llama_ppl FILE.gguf [extra args] -> "PPL ± err" from llama-perplexity's final estimate
llama_ppl() {
  if [[ $have_llama == 0 ]]; then printf '—'; return; fi
  local f=$1
  shift
  "$ppl_bin" -m "$f" -f "$text" -c 512 -b 512 -t "$llama_threads" "$@" 2>&1 |
    sed -n 's/.*Final estimate: PPL = \([0-9.]*\) +\/- \([0-9.]*\).*/\1 ± \2/p' | tail -1
}

echo "| model | GGUF | awq eval dir, paper | awq eval dir, llama.cpp | awq eval GGUF, paper | awq eval GGUF, llama.cpp | llama-perplexity -ub 16 | llama-perplexity -ub 512 |"
echo "|---|---|---|---|---|---|---|---|"
# row LABEL DIR GGUF TYPE
row() {
  printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$4" \
    "$(awq_ppl "$2" paper)" "$(awq_ppl "$2" llamacpp)" "$(awq_ppl "$3" paper)" "$(awq_ppl "$3" llamacpp)" \
    "$(llama_ppl "$3" -ub 16)" "$(llama_ppl "$3")"
}
row "FP" "$work/fp" "$work/fp-f32.gguf" F32
row "FP" "$work/fp" "$work/fp-f16.gguf" F16
row "RTN W4 g32" "$work/rtn" "$work/rtn-q4_1.gguf" Q4_1
row "AWQ W4 g32" "$work/awq" "$work/awq-q4_1.gguf" Q4_1
