#!/usr/bin/env bash
# GGUF export of every family, checked against llama.cpp: for each family a small synthetic model
# (f32, --weight-std 0.2 --norm-noise 0.2 so that norms, windows, soft-caps and RoPE all move the
# logits) with a real tokenizer is exported as F32 and, after `awq quantize --method rtn`, as Q4_1;
# `awq eval --convention llamacpp --ctx 512` and llama.cpp's `llama-perplexity -c 512` then score the
# same GGUF file. Prints a Markdown table (awq eval on the directory too, for the export's own loss).
#
#   scripts/gguf-families.sh LLAMA_CPP_BIN_DIR [BUILD_DIR] [FAMILY...]
#
# LLAMA_CPP_BIN_DIR holds llama-perplexity (e.g. a c392e509 build: /tmp/llama.cpp/build/bin);
# BUILD_DIR holds `awq` (default: build). FAMILY: llama (llama3 RoPE), mistral (explicit head_dim),
# gemma, gemma2, phi3 (fused qkv/gate_up, longrope), phi4mini (phi3 with partial rotary and tied
# embeddings), qwen3, gemma3, and the MoE families mixtral, qwen2moe (shared expert), qwen3moe
# (default: all). c392e509 predates qwen3, gemma3 and qwen3moe and cannot load
# partial-rotary longrope: where llama-perplexity fails and NODE_LLAMA_CPP names an installed
# node-llama-cpp package (npm install --ignore-scripts node-llama-cpp @node-llama-cpp/linux-x64),
# its prebuilt llama.cpp scores the file instead (scripts/gguf-llamacpp-ppl.mjs).
# Rows "override" rerun llama.cpp with one feature's key changed (--override-kv), to show the
# comparison sees that feature. Not run in CI: it needs a llama.cpp build. Needs the shared data
# (AWQ_DATA, default ../shared/data). THREADS (default 2) for awq, LLAMA_THREADS (default 1) for
# llama.cpp, TEXT_BYTES (default 24000) of wiki.test.raw, CHUNKS (default 4) windows of 512 scored.
# KV_F32=1 runs llama-perplexity with f32 key/value caches (-ctk f32 -ctv f32; default f16), which
# removes most of its difference to awq.cpp on these sharp models (awq.cpp keeps f32 caches); the
# node-llama-cpp path keeps its default cache.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
llama="${1:?usage: scripts/gguf-families.sh LLAMA_CPP_BIN_DIR [BUILD_DIR] [FAMILY...]}"
build="${2:-$here/build}"
shift $(( $# >= 2 ? 2 : 1 ))
families=("$@")
[[ ${#families[@]} -gt 0 ]] ||
  families=(llama mistral gemma gemma2 phi3 phi4mini qwen3 gemma3 mixtral qwen2moe qwen3moe)
chunks="${CHUNKS:-4}"
nlc="${NODE_LLAMA_CPP:-}"
threads="${THREADS:-2}"
llama_threads="${LLAMA_THREADS:-1}"
kv_args=()
[[ ${KV_F32:-0} == 1 ]] && kv_args=(-ctk f32 -ctv f32)
awq="$build/awq"
data="${AWQ_DATA:-$here/../shared/data}"
ppl_bin="$llama/llama-perplexity"
work="$(mktemp -d "${TMPDIR:-/tmp}/gguf-families.XXXXXX")"
trap 'rm -rf "$work"' EXIT

[[ -x "$awq" ]] || { echo "no awq binary at $awq (build first)" >&2; exit 1; }
[[ -x "$ppl_bin" ]] || { echo "no llama-perplexity in $llama" >&2; exit 1; }
[[ -f "$data/text/wiki.test.raw" ]] || { echo "shared data not found under $data" >&2; exit 1; }
head -c "${TEXT_BYTES:-24000}" "$data/text/wiki.test.raw" > "$work/text.txt"
text="$work/text.txt"

# config FAMILY -> config.json of a small model with the family's features; TOKENIZER_DIR too
config() {
  local common='"hidden_size":128,"intermediate_size":256,"num_attention_heads":4,
    "max_position_embeddings":4096,"rms_norm_eps":1e-5,"bos_token_id":1,"eos_token_id":2'
  case $1 in
    llama) echo "{\"model_type\":\"llama\",$common,\"num_hidden_layers\":4,\"num_key_value_heads\":2,
      \"vocab_size\":32000,\"rope_theta\":500000.0,\"tie_word_embeddings\":false,
      \"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8.0,\"low_freq_factor\":1.0,
      \"high_freq_factor\":4.0,\"original_max_position_embeddings\":256}}" ;;
    mistral) echo "{\"model_type\":\"mistral\",$common,\"num_hidden_layers\":4,
      \"num_key_value_heads\":2,\"head_dim\":64,\"vocab_size\":32000,\"rope_theta\":1000000.0,
      \"sliding_window\":null,\"tie_word_embeddings\":false}" ;;
    gemma) echo "{\"model_type\":\"gemma\",$common,\"num_hidden_layers\":4,\"num_key_value_heads\":1,
      \"head_dim\":64,\"vocab_size\":32000,\"rope_theta\":10000.0,\"hidden_act\":\"gelu_pytorch_tanh\",
      \"tie_word_embeddings\":true}" ;;
    # 26 layers: llama.cpp c392e509 aborts on other gemma2 layer counts.
    gemma2) echo "{\"model_type\":\"gemma2\",$common,\"num_hidden_layers\":26,
      \"num_key_value_heads\":2,\"head_dim\":32,\"query_pre_attn_scalar\":32,\"vocab_size\":32000,
      \"rope_theta\":10000.0,\"sliding_window\":64,\"attn_logit_softcapping\":50.0,
      \"final_logit_softcapping\":30.0,\"hidden_activation\":\"gelu_pytorch_tanh\",
      \"tie_word_embeddings\":true}" ;;
    gemma3) echo "{\"model_type\":\"gemma3_text\",$common,\"num_hidden_layers\":8,
      \"num_key_value_heads\":2,\"head_dim\":32,\"query_pre_attn_scalar\":32,\"vocab_size\":32000,
      \"rope_theta\":1000000.0,\"rope_local_base_freq\":10000.0,\"sliding_window\":64,
      \"sliding_window_pattern\":6,\"rope_scaling\":{\"rope_type\":\"linear\",\"factor\":8.0},
      \"hidden_activation\":\"gelu_pytorch_tanh\",\"tie_word_embeddings\":true}" ;;
    # Phi-3-mini-128k's features (longrope's attention factor applies at any length).
    phi3) echo "{\"model_type\":\"phi3\",$common,\"num_hidden_layers\":4,\"num_key_value_heads\":4,
      \"vocab_size\":32064,\"max_position_embeddings\":131072,\"original_max_position_embeddings\":4096,
      \"rope_theta\":10000.0,\"sliding_window\":128,\"tie_word_embeddings\":false,
      \"rope_scaling\":{\"type\":\"longrope\",\"short_factor\":\"ramp:1.0:1.5\",
      \"long_factor\":\"ramp:1.0:40.0\"}}" ;;
    # Phi-4-mini's: partial rotary, GQA, tied embeddings, window off (c392e509 cannot load it;
    # newer llama.cpp ignores phi3's sliding_window, so it is left as Phi-4-mini has it: 262144).
    phi4mini) echo "{\"model_type\":\"phi3\",$common,\"num_hidden_layers\":4,\"num_key_value_heads\":2,
      \"vocab_size\":32064,\"max_position_embeddings\":131072,\"original_max_position_embeddings\":4096,
      \"rope_theta\":10000.0,\"partial_rotary_factor\":0.5,\"sliding_window\":262144,
      \"tie_word_embeddings\":true,\"rope_scaling\":{\"type\":\"longrope\",
      \"short_factor\":\"ramp:1.0:1.5\",\"long_factor\":\"ramp:1.0:40.0\"}}" ;;
    qwen3) echo "{\"model_type\":\"qwen3\",$common,\"num_hidden_layers\":4,\"num_key_value_heads\":2,
      \"head_dim\":64,\"vocab_size\":151936,\"rope_theta\":1000000.0,\"tie_word_embeddings\":true,
      \"use_sliding_window\":false}" ;;
    # The MoE families (every layer sparse: llama.cpp has no dense layer in them). Mixtral is
    # llama with experts (top-k renormalized); qwen2moe adds the sigmoid-gated shared expert and
    # never renormalizes; qwen3moe (newer than c392e509) always does.
    mixtral) echo "{\"model_type\":\"mixtral\",$common,\"num_hidden_layers\":4,
      \"num_key_value_heads\":2,\"vocab_size\":32000,\"rope_theta\":1000000.0,\"sliding_window\":null,
      \"num_local_experts\":8,\"num_experts_per_tok\":2,\"tie_word_embeddings\":false}" ;;
    qwen2moe) echo "{\"model_type\":\"qwen2_moe\",$common,\"num_hidden_layers\":4,
      \"num_key_value_heads\":4,\"vocab_size\":151936,\"rope_theta\":1000000.0,
      \"use_sliding_window\":false,\"num_experts\":8,\"num_experts_per_tok\":2,
      \"moe_intermediate_size\":64,\"shared_expert_intermediate_size\":192,\"norm_topk_prob\":false,
      \"decoder_sparse_step\":1,\"mlp_only_layers\":[],\"tie_word_embeddings\":false}" ;;
    qwen3moe) echo "{\"model_type\":\"qwen3_moe\",$common,\"num_hidden_layers\":4,
      \"num_key_value_heads\":2,\"head_dim\":64,\"vocab_size\":151936,\"rope_theta\":1000000.0,
      \"use_sliding_window\":false,\"num_experts\":16,\"num_experts_per_tok\":4,
      \"moe_intermediate_size\":64,\"norm_topk_prob\":true,\"decoder_sparse_step\":1,
      \"tie_word_embeddings\":false}" ;;
    *) echo "unknown family $1" >&2; return 1 ;;
  esac
}
tokenizer() {
  case $1 in
    phi3|phi4mini) echo "$data/tokenizers/phi-3" ;;
    qwen3|qwen2moe|qwen3moe) echo "$data/tokenizers/qwen2.5" ;;
    *) echo "$data/tokenizers/llama2" ;;
  esac
}

awq_ppl() {
  "$awq" eval --model "$1" --text "$text" --ctx 512 --convention llamacpp --max-windows "$chunks" \
    -t "$threads" --json | grep -o '"perplexity": *[-0-9.e+]*' | head -1 | sed 's/.*: *//' |
    xargs printf '%.4f'
}
# llama_ppl FILE.gguf [llama-perplexity args] -> "c392e509-build: PPL ± err", or its error line
llama_ppl() {
  local f=$1 out p
  shift
  out="$("$ppl_bin" -m "$f" -f "$text" -c 512 -b 512 --chunks "$chunks" -t "$llama_threads" \
    ${kv_args[@]+"${kv_args[@]}"} "$@" 2>&1)" || true
  p="$(sed -n 's/.*Final estimate: PPL = \([0-9.]*\) +\/- \([0-9.]*\).*/\1 ± \2/p' <<<"$out" | tail -1)"
  if [[ -n $p ]]; then echo "llama-perplexity: $p"; return; fi
  p="$(grep -m1 -E "error|exception|failed|GGML_ASSERT" <<<"$out" | sed 's/.*\(error\|exception\)/\1/' |
    cut -c1-110 | tr '|' '/')"
  echo "llama-perplexity failed: ${p:-no estimate}"
}
node_ppl() {
  local p
  p="$(NODE_LLAMA_CPP="$nlc" node "$here/scripts/gguf-llamacpp-ppl.mjs" "$1" "$text" 512 "$chunks" 2>/dev/null |
    sed -n 's/^llama.cpp \([^ ]*\) .*PPL = \([0-9.]*\) +\/- \([0-9.]*\).*/node-llama-cpp (\1): \2 ± \3/p')"
  echo "${p:-node-llama-cpp failed}"
}
# row FAMILY LABEL AWQ_DIR_PPL AWQ_GGUF_PPL LLAMA_RESULT
row() {
  local rel="—"
  if [[ $5 =~ :\ ([0-9.]+)\ ± ]]; then
    rel="$(awk -v x="$4" -v y="${BASH_REMATCH[1]}" 'BEGIN { printf "%.1e", (y - x) / x }')"
  fi
  echo "| $1 | $2 | $3 | $4 | $5 | $rel |"
}
# One llama.cpp key per family whose change the comparison must see.
override() {
  case $1 in
    gemma2) echo "gemma2.attention.sliding_window=int:4096" ;;
    phi3) echo "phi3.rope.scaling.attn_factor=float:1.0" ;;
    mistral) echo "llama.rope.freq_base=float:10000.0" ;;
    # Routing: one expert per token instead of the model's two.
    mixtral) echo "llama.expert_used_count=int:1" ;;
    qwen2moe) echo "qwen2moe.expert_used_count=int:1" ;;
  esac
}

echo "| family | GGUF | awq eval dir | awq eval GGUF | llama.cpp on the GGUF (llama-perplexity KV cache $([[ ${KV_F32:-0} == 1 ]] && echo f32 || echo f16)) | rel. diff (llama.cpp vs awq, GGUF) |"
echo "|---|---|---|---|---|---|"
for fam in "${families[@]}"; do
  config "$fam" > "$work/$fam.json"
  "$awq" synth --config "$work/$fam.json" --dtype f32 --weight-std 0.2 --norm-noise 0.2 \
    --tokenizer "$(tokenizer "$fam")" --out "$work/$fam" >/dev/null
  "$awq" export-gguf --model "$work/$fam" --type f32 --out "$work/$fam-f32.gguf" 2>"$work/$fam.warn" >/dev/null
  models=("$work/$fam|$work/$fam-f32.gguf|F32")
  if "$awq" quantize --model "$work/$fam" --method rtn --group-size 64 -t "$threads" \
       --out "$work/$fam-rtn" >/dev/null 2>"$work/$fam-rtn.err" &&
     "$awq" export-gguf --model "$work/$fam-rtn" --type q4_1 --out "$work/$fam-q4_1.gguf" \
       >/dev/null 2>>"$work/$fam.warn"; then
    models+=("$work/$fam-rtn|$work/$fam-q4_1.gguf|Q4_1 (RTN g64)")
  else
    echo "| $fam | Q4_1 | quantize/export failed: $(tail -1 "$work/$fam-rtn.err" | cut -c1-100 | tr '|' '/') | | | |"
  fi
  for m in "${models[@]}"; do
    IFS='|' read -r dir gguf label <<<"$m"
    a="$(awq_ppl "$dir")"
    b="$(awq_ppl "$gguf")"
    c="$(llama_ppl "$gguf")"
    if [[ $c == *failed* && -n $nlc ]]; then
      row "$fam" "$label" "$a" "$b" "$c"
      c="$(node_ppl "$gguf")"
    fi
    row "$fam" "$label" "$a" "$b" "$c"
    if [[ $label == F32 && -n "$(override "$fam")" && $c == llama-perplexity:* ]]; then
      row "$fam" "F32, override $(override "$fam")" "" "$b" "$(llama_ppl "$gguf" --override-kv "$(override "$fam")")"
    fi
  done
  grep -h "warning" "$work/$fam.warn" | sort -u | sed "s/^/  [$fam] /" >&2 || true
done
