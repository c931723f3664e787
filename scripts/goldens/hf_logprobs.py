#!/usr/bin/env python3
"""Golden log-probabilities from Hugging Face transformers' own modeling code (CPU, float32).

Usage:
  hf_logprobs.py --model DIR --windows N --length T --seed S --out OUT.json [--dtype float32] [--decode]

DIR is a HF model directory (config.json + model.safetensors). The model is loaded with
AutoModelForCausalLM.from_pretrained(DIR, torch_dtype=..., attn_implementation="eager"); a multimodal Gemma 3
config (model_type "gemma3") is loaded as Gemma3ForConditionalGeneration and fed input_ids only.
Each of the N windows of T token ids is one forward pass from position 0 (batch 1, no padding,
use_cache=False). Logits are computed in the model dtype; only the final log_softmax is float64.

Token ids: one splitmix64 stream seeded with S, consumed window after window (id = z mod vocab_size):
  state += 0x9E3779B97F4A7C15; z = state
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9; z = (z ^ (z >> 27)) * 0x94D049BB133111EB; z ^= z >> 31   (mod 2^64)
vocab_size is config.vocab_size (text_config.vocab_size for multimodal Gemma 3). The ids are written to the
JSON, so consumers need not re-create them.

Output JSON: model_dir (basename), transformers_version, torch_version, config (config.json as read),
windows [[ids]], logprobs [[log p(ids[i+1] | ids[..i]) for i in 0..T-2]] per window, nll (mean -logprob
over all scored positions), last_logits (first 16 logits at the last position of each window).
--decode also runs HF's own incremental KV-cache decoding (token by token, use_cache=True, the cache that
generate() would use: HybridCache sized T for configs whose cache_implementation is "hybrid", i.e. Gemma 2/3,
DynamicCache otherwise) over the first window and writes its logprobs as decode_logprobs.

Environment (built once, outside the repo, as root on the Debian bookworm host; no PyPI, no network at run time):
  apt-get update && apt-get install -y debootstrap
  debootstrap --variant=minbase --include=ca-certificates trixie /work/hfenv http://deb.debian.org/debian
  chroot /work/hfenv apt-get update
  chroot /work/hfenv apt-get install -y --no-install-recommends python3-torch python3-numpy python3-safetensors \
      python3-regex python3-yaml python3-packaging python3-filelock python3-requests python3-tqdm python3-fsspec \
      python3-typing-extensions python3-pip python3-setuptools python3-wheel libopenblas0-pthread
      # torch 2.6.0+debian; libopenblas0-pthread replaces the reference BLAS that minbase would otherwise use
  # Trixie has neither python3-huggingface-hub nor python3-tokenizers nor python3-transformers; sid's are 1.x/5.x.
  # Sources via the `fetch` tool (bare git mirrors): huggingface/huggingface_hub tag v0.32.4 (1589ba210589), and
  # transformers v4.52.4 = upstream commit 51f94ea06d19a6308c61bbb4dc97c40aabd12bad, taken from the fork mirror
  # brinenick511/transformers-svd (huggingface/transformers itself is over the fetch size limit).
  mkdir -p /work/hfenv/opt/src/huggingface_hub-0.32.4 /work/hfenv/opt/src/transformers-4.52.4
  git --git-dir=/work/.mirror/huggingface+huggingface_hub/repo archive v0.32.4 \
      | tar -x -C /work/hfenv/opt/src/huggingface_hub-0.32.4
  git --git-dir=/work/.mirror/brinenick511+transformers-svd/repo archive 51f94ea06d19 setup.py README.md LICENSE \
      src/transformers | tar -x -C /work/hfenv/opt/src/transformers-4.52.4
  for d in huggingface_hub-0.32.4 transformers-4.52.4; do chroot /work/hfenv sh -c \
      "cd /opt/src/$d && pip install --no-deps --no-build-isolation --no-index --break-system-packages ."; done
  # Shim: /work/hfenv/opt/shims/tokenizers/{__init__,models}.py, an import-only stand-in with no dist-info (so
  # transformers sees tokenizers as unavailable): each file's module-level __getattr__(name) returns a class whose
  # constructor raises ImportError (decoders/normalizers/pre_tokenizers/processors/trainers: a namespace of such). 4.52.4 imports `tokenizers` at module level in
  # integrations/ggml.py and convert_slow_tokenizer.py even for modeling-only use. Put on PYTHONPATH=/opt/shims.
Run (the repo must be visible inside: bind /work; torch needs /proc for CPU detection, else numerics change):
  mkdir -p /work/hfenv/work; mountpoint -q /work/hfenv/work || mount --bind /work /work/hfenv/work
  mountpoint -q /work/hfenv/proc || mount -t proc proc /work/hfenv/proc
  chroot /work/hfenv env PYTHONPATH=/opt/shims HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 python3 \
      /work/main/scripts/goldens/hf_logprobs.py --model /work/... --windows 4 --length 64 --seed 1 --out /work/...json
  (paths are as seen inside the chroot; /tmp there is /work/hfenv/tmp.) Never rm -rf /work/hfenv while
  /work/hfenv/work is bind-mounted: umount /work/hfenv/work /work/hfenv/proc first.
Notes (4.52.4): decode_logprobs equal the full-window ones to ~1e-6 except for rope_scaling "dynamic" (once T >
max_position_embeddings) and "longrope" (once T > original_max_position_embeddings): there the full window uses the
scaled/long frequencies at every position, while decoding switches only when it passes the limit. Eager attention
applies sliding_window through the mask (Mistral; Gemma 2/3 sliding layers; Qwen2/3 only if use_sliding_window);
the "Sliding Window Attention is enabled but not implemented for `eager`" warning of Qwen2/3 is only a warning.
MoE families (Mixtral, Qwen2-MoE, Qwen3-MoE) go through the same AutoModelForCausalLM call: their sparse blocks
return (hidden, router_logits) internally, the CausalLM output's .logits is what is scored, and router logits are
not requested (output_router_logits stays False).
"""
import argparse
import json
import os

import torch
import transformers

MASK64 = (1 << 64) - 1


def splitmix64(seed):
    state = seed & MASK64
    while True:
        state = (state + 0x9E3779B97F4A7C15) & MASK64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        yield z ^ (z >> 31)


def load(model_dir, dtype, config):
    kw = dict(torch_dtype=dtype, attn_implementation="eager")
    if config.get("model_type") == "gemma3":
        model = transformers.Gemma3ForConditionalGeneration.from_pretrained(model_dir, **kw)
    else:
        model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, **kw)
    return model.eval()


def logprobs_of(logits, ids):
    """log p(ids[i+1] | ids[..i]) for i in 0..len-2, from logits [len, vocab]."""
    lp = logits[:-1].double().log_softmax(-1)
    return lp.gather(-1, ids[1:].unsqueeze(-1)).squeeze(-1)


def decode_logprobs(model, ids):
    """HF incremental decoding over one window, with the cache that generate() would build."""
    text_cfg = model.config.get_text_config()
    if getattr(text_cfg, "cache_implementation", None) == "hybrid":
        cache = transformers.HybridCache(config=text_cfg, max_batch_size=1, max_cache_len=len(ids),
                                         dtype=model.dtype, device="cpu")
    else:
        cache = transformers.DynamicCache()
    rows = []
    for i in range(len(ids)):
        pos = torch.tensor([i])
        out = model(input_ids=ids[i:i + 1].unsqueeze(0), past_key_values=cache, use_cache=True,
                    cache_position=pos, position_ids=pos.unsqueeze(0))
        cache = out.past_key_values
        rows.append(out.logits[0, -1].float())
    return logprobs_of(torch.stack(rows), ids)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--windows", type=int, required=True)
    ap.add_argument("--length", type=int, required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--decode", action="store_true")
    args = ap.parse_args()
    torch.manual_seed(0)

    with open(os.path.join(args.model, "config.json")) as f:
        config = json.load(f)
    model = load(args.model, getattr(torch, args.dtype), config)
    vocab = model.config.get_text_config().vocab_size

    rng = splitmix64(args.seed)
    windows = [[next(rng) % vocab for _ in range(args.length)] for _ in range(args.windows)]
    res = {"model_dir": os.path.basename(os.path.normpath(args.model)),
           "transformers_version": transformers.__version__, "torch_version": torch.__version__,
           "config": config, "windows": windows, "logprobs": [], "last_logits": []}
    with torch.no_grad():
        for w in windows:
            ids = torch.tensor(w)
            logits = model(input_ids=ids.unsqueeze(0), use_cache=False).logits[0]
            res["logprobs"].append(logprobs_of(logits, ids).tolist())
            res["last_logits"].append(logits[-1, :16].double().tolist())
        if args.decode:
            res["decode_logprobs"] = decode_logprobs(model, torch.tensor(windows[0])).tolist()
    scored = [x for row in res["logprobs"] for x in row]
    res["nll"] = -sum(scored) / len(scored)
    with open(args.out, "w") as f:
        json.dump(res, f)
    print(f"{args.out}: {len(windows)} x {args.length} tokens, nll {res['nll']:.6f}")


if __name__ == "__main__":
    main()
