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
#
# On a lent GPU machine that reaches no package registry (this workplace's
# device tool): its python3 has torch, numpy, scipy, scikit-learn and pytest,
# and lossmap.nn needs nothing more (zarr only for stores). loss-landscapes
# travels as a wheel: here, `bash benchmarks/gpu_check.sh --wheels` puts it in
# .whl/ (git-ignored); there, carry .whl and run this script. Both steps fit
# in one 600 s call (CUDA tests <= 240 s, benchmark <= 300 s).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
if [ "${1:-}" = "--wheels" ]; then
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_17_x86_64 -d .whl loss-landscapes==3.0.6
  ls .whl; exit 0
fi
if compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
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
timeout 240 "$PY" -m pytest -q -p no:cacheprovider tests/nn/test_cuda.py tests/nn/test_bf16.py -rs

echo "== W1, W2 on the GPU (float, many points per pass, bf16) vs loss-landscapes"
"$PY" -c "import loss_landscapes" 2>/dev/null || echo "loss-landscapes not importable: lossmap only"
timeout 300 "$PY" -m benchmarks gpu
echo "results: benchmarks/results/gpu.json"
