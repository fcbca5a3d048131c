#!/usr/bin/env bash
# The GPU benchmarks in one run, for a machine with a CUDA GPU (each prints its fast/plain ratios side by side):
# fine-tune + feature extraction, the view pipeline (CPU workers vs on the device), pre-training per method.
# Usage: bash benchmarks/gpu.sh [OUT_DIR]   (logs go to OUT_DIR, default ./bench-out; record the figures in
# benchmarks/README.md). Stops at the first failure so a broken run is not mistaken for a slow one.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bench-out}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA GPU: these figures are GPU figures'"
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$out/gpu.txt"
python benchmarks/bench_finetune.py 2>&1 | tee "$out/finetune.txt"
python benchmarks/bench_views.py 2>&1 | tee "$out/views.txt"
python benchmarks/bench_pretrain.py 2>&1 | tee "$out/pretrain.txt"
