#!/usr/bin/env bash
# The benchmark, as one command on the GPU machine: bench/bench.py with the binaries of .gpu/
# (scripts/pack-gpu.sh) or build/, and Liger-Kernel from .peers/src if present. Arguments go
# to bench.py (e.g. --out DIR, --ops rms_norm, --quick).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f .gpu/libtigon_torch.so ] && export TIGON_LIBRARY_DIR="$PWD/.gpu"
export TIGON_CACHE_DIR="${TIGON_CACHE_DIR:-$(mktemp -d)/cache}"
# every compile and tuning decision goes to stderr: a slow row can be traced to its config
export TIGON_LOG="${TIGON_LOG:-info}"
exec python3 bench/bench.py "$@"
