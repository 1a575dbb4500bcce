#!/usr/bin/env bash
# The whole GPU test suite, as one command on a machine with an NVIDIA GPU. Runs the GPU
# checks twice on a fresh cache: the first process compiles and tunes, the second must load
# everything from the disk cache and compile nothing. Binaries come from .gpu/ (made here by
# scripts/pack-gpu.sh and carried to the GPU machine) or build/. Arguments go to the check
# program: --backend nvrtc checks the NVRTC backend (default: $TIGON_BACKEND, else llvm).
# Then the NVRTC backend, tigon_backend_compare (both backends element for element) and the
# Python tests with CUDA tensors, and on a machine of 2 or more GPUs the torchrun run of
# tests/distributed/run.py (DDP and FSDP2, NCCL, a shared cache raced by every rank).
# TIGON_GPU_CHECK_PART=checks runs the compiled checks only, =python the Python tests and the
# multi-GPU run only: two calls where one must stay under a time limit (the whole suite took
# over 600 s on a slow host of an H200 machine, 173 s checks and 380 s Python tests).
set -euo pipefail
cd "$(dirname "$0")/.."
part="${TIGON_GPU_CHECK_PART:-all}"
case "$part" in all|checks|python) ;; *) echo "TIGON_GPU_CHECK_PART must be all, checks or python, not '$part'" >&2; exit 2;; esac
bin=.gpu
[ -x "$bin/tigon_gpu_check" ] || bin=build
export TIGON_CACHE_DIR="$(mktemp -d)/cache"
if [ "$part" != python ]; then
  echo "== first process: empty cache =="
  "$bin/tigon_gpu_check" "$@"
  echo "== second process: warm cache =="
  "$bin/tigon_gpu_check" --expect-warm "$@"
  echo "== the NVRTC backend, empty cache =="
  "$bin/tigon_gpu_check" --backend nvrtc
  echo "== both backends against each other and the interpreter =="
  "$bin/tigon_backend_compare"
fi
[ "$part" = checks ] && exit 0
echo "== Python tests (CPU and CUDA tensors) =="
[ -f .gpu/libtigon_torch.so ] && export TIGON_LIBRARY_DIR="$PWD/.gpu"
export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
python3 -m pytest -q -rs tests/python
if [ "$(python3 -c 'import torch; print(torch.cuda.device_count())')" -ge 2 ]; then
  echo "== multi-GPU: DDP and FSDP2 under torchrun =="
  python3 tests/distributed/run.py --out "$(mktemp -d)"
else
  echo "== multi-GPU: skipped (fewer than 2 GPUs; the gloo run of it is in the Python tests) =="
fi
