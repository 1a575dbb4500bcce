#!/usr/bin/env bash
# The whole GPU test suite, as one command on a machine with an NVIDIA GPU. Runs the GPU
# checks twice on a fresh cache: the first process compiles and tunes, the second must load
# everything from the disk cache and compile nothing. Binaries come from .gpu/ (made here by
# scripts/pack-gpu.sh and carried to the GPU machine) or build/.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.gpu
[ -x "$bin/tigon_gpu_check" ] || bin=build
export TIGON_CACHE_DIR="$(mktemp -d)/cache"
echo "== first process: empty cache =="
"$bin/tigon_gpu_check"
echo "== second process: warm cache =="
"$bin/tigon_gpu_check" --expect-warm
echo "== Python tests (CPU and CUDA tensors) =="
[ -f .gpu/libtigon_torch.so ] && export TIGON_LIBRARY_DIR="$PWD/.gpu"
python3 -m pytest -q -rs tests/python
