#!/usr/bin/env bash
# GPU readiness (issue 16): the overhead and policies benchmarks on an NVIDIA GPU in one go,
# with stand-ins of a few billion parameters; results in bench/results/gpu-<time>/ (bench/gpu.ts).
#
# On the GPU machine, from the repository root, after a full `npm ci` (it installs
# node-llama-cpp's optional prebuilt CUDA binary, @node-llama-cpp/linux-x64-cuda; nothing is
# compiled) and with an NVIDIA driver:
#   bash bench/gpu.sh                          # 4 × 3B stand-ins (≈15 GB written once), ≈15–25 min
#   bash bench/gpu.sh --shape 8b --models 3 --rates 1,2,4
# Anywhere (no GPU): tiny stand-ins, one short point of each benchmark, on CPU:
#   bash bench/gpu.sh --dry-run
set -euo pipefail
cd "$(dirname "$0")/.."

dry=0
for a in "$@"; do [ "$a" = "--dry-run" ] && dry=1; done

if [ "$dry" = 0 ]; then
  if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "no NVIDIA GPU here (nvidia-smi found none); use --dry-run to check the script on CPU" >&2
    exit 1
  fi
  if [ ! -d node_modules/@node-llama-cpp/linux-x64-cuda ]; then
    echo "node-llama-cpp's CUDA binary is not installed (node_modules/@node-llama-cpp/linux-x64-cuda): run a full 'npm ci' (optional dependencies included)" >&2
    exit 1
  fi
  nvidia-smi -L
fi
exec node --import tsx bench/gpu.ts "$@"
