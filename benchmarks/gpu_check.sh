#!/usr/bin/env bash
# The GPU path, proven in one short run on a machine with a CUDA GPU.
#
#   bash benchmarks/gpu_check.sh            # from the repository root
#
# 1. the CUDA tests (GPU against CPU numbers; bf16 on the GPU where supported),
# 2. W1 and W2 on the GPU: lossmap (engine's choice; many points per pass with
#    strategy="vmap"; precision="bf16") against loss-landscapes on the same GPU
#    → benchmarks/results/gpu.json. Copy the figures, with the GPU's name, into
#    benchmarks/README.md ("GPU" section).
#
# Needs a CUDA build of torch (the Makefile's venv has the CPU wheel: install
# the CUDA one in its place first). Nothing else in the project needs a GPU.
# Written on a machine without a GPU: it has not been run yet.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python}
export PYTHONPATH=src:.${PYTHONPATH:+:$PYTHONPATH}

"$PY" - <<'PYEOF'
import sys, torch
if not torch.cuda.is_available():
    sys.exit(f"no CUDA device visible to torch {torch.__version__}: nothing to check")
print("GPU:", torch.cuda.get_device_name(0), "| torch", torch.__version__,
      "| CUDA", torch.version.cuda, "| bf16:", torch.cuda.is_bf16_supported())
PYEOF
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv

echo "== CUDA tests"
timeout 600 "$PY" -m pytest -q tests/nn/test_cuda.py tests/nn/test_bf16.py -rs

echo "== W1, W2 on the GPU (float, many points per pass, bf16) vs loss-landscapes"
"$PY" -m pip install -q loss-landscapes==3.0.6 || echo "loss-landscapes not installed: lossmap only"
timeout 900 "$PY" -m benchmarks gpu
echo "results: benchmarks/results/gpu.json"
