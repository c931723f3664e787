#!/usr/bin/env bash
# Re-creates tests/goldens/*/golden.json: for each tiny config there, `awq synth` writes the
# weights (the same call tests/tools/family_golden_test.cpp makes: f32, seed 7, --weight-std 0.25,
# --norm-noise 0.3) and hf_logprobs.py runs transformers' own modeling code on them (4 windows of
# 48 tokens). Run once, by hand, offline, in the chroot that hf_logprobs.py's header describes;
# nothing in the build or the tests needs Python.
#   scripts/goldens/make_goldens.sh [AWQ_BINARY] [CHROOT] [NAME...]
#     (defaults: build/awq, /work/hfenv, every directory of tests/goldens; NAMEs re-create only
#     those goldens, e.g. a new family's, leaving the others' golden.json as they are)
set -euo pipefail
cd "$(dirname "$0")/../.."
awq=${1:-build/awq}
root=${2:-/work/hfenv}
shift $(($# < 2 ? $# : 2))
repo=$(pwd)
dirs=()
if (($# > 0)); then
  for name in "$@"; do
    [[ -f tests/goldens/$name/config.json ]] || { echo "no tests/goldens/$name/config.json" >&2; exit 1; }
    dirs+=("tests/goldens/$name/")
  done
else
  dirs=(tests/goldens/*/)
fi
mountpoint -q "$root/work" || { mkdir -p "$root/work"; mount --bind /work "$root/work"; }
mountpoint -q "$root/proc" || mount -t proc proc "$root/proc"
for dir in "${dirs[@]}"; do
  name=$(basename "$dir")
  model=/tmp/awq-goldens/$name  # inside the chroot
  rm -rf "$root$model"
  mkdir -p "$(dirname "$root$model")"
  "$awq" synth --config "$dir/config.json" --dtype f32 --seed 7 --weight-std 0.25 --norm-noise 0.3 \
    --out "$root$model" >/dev/null
  # dynamic and longrope change their frequencies as a sequence grows: HF's own incremental
  # decode is the reference for the KV-cache test there.
  extra=()
  grep -qE '"(dynamic|longrope)"' "$dir/config.json" && extra=(--decode)
  chroot "$root" env PYTHONPATH=/opt/shims HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_NUM_THREADS=1 \
    python3 "$repo/scripts/goldens/hf_logprobs.py" --model "$model" --windows 4 --length 48 \
    --seed 11 --out "$repo/$dir/golden.json" "${extra[@]}" 2>/dev/null
  echo "$name: $(grep -o '"nll": [0-9.]*' "$dir/golden.json")"
done
