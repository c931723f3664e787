#!/usr/bin/env bash
# Installs every Debian package awq.cpp needs to build, test and benchmark. Idempotent:
# packages already present are skipped, so a second run does nothing.
set -euo pipefail
packages=(
  g++ cmake ninja-build pkg-config   # toolchain
  libgtest-dev libgmock-dev         # unit tests (CTest + GoogleTest)
  libbenchmark-dev                  # bench/ microbenchmarks
  libopenblas-dev                   # f32 sgemm for prefill, calibration and the AWQ search
  nlohmann-json3-dev                # config.json, tokenizer.json, safetensors headers
  libcli11-dev                      # the awq command line
  libfmt-dev                        # error messages and table output
  libpcre2-dev                      # tokenizer pre-tokenizer regexes with Unicode classes
  libutf8proc-dev                   # NFC normalization (Qwen2 tokenizers)
  clang                             # the asan preset: ASan + UBSan test run and libFuzzer targets
  libopenmpi-dev openmpi-bin        # optional: awq quantize --mpi (mpirun shards and merges)
)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi
echo "setup: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
