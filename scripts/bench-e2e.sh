#!/usr/bin/env bash
# The end-to-end training benchmark, as one command on the GPU machine: bench/e2e.py with the
# binaries of .gpu/ (scripts/pack-gpu.sh) or build/, and Liger-Kernel from .peers/src if
# present. Arguments go to e2e.py (e.g. --model llama --out DIR); each model fits one call of
# under 10 minutes (--budget, default 540 s, cuts what would run longer).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f .gpu/libtigon_torch.so ] && export TIGON_LIBRARY_DIR="$PWD/.gpu"
exec python3 bench/e2e.py "$@"
