#!/usr/bin/env bash
# Installs what tigon needs on Debian 12 with the CUDA toolkit in /usr/local/cuda (apt and
# pip packages), then configures and builds it into build/. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
# clang-14 and libclang-rt-14-dev: the libFuzzer targets (scripts/fuzz.sh)
packages="llvm-19-dev libzstd-dev libfmt-dev doctest-dev ninja-build cmake g++ clang-14 libclang-rt-14-dev"
if ! dpkg -s $packages >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $packages
fi

PYTHON=${PYTHON:-python3}
# torch pinned to the GPU machine's version: the op library links against its LibTorch
if ! "$PYTHON" -c 'import torch, pytest, numpy, transformers; assert torch.__version__.startswith("2.11.0") and transformers.__version__ == "5.17.0"' 2>/dev/null; then
  "$PYTHON" -m pip install -q "torch==2.11.0" pytest numpy "transformers==5.17.0"
fi

cuda_root=${CUDA_HOME:-/usr/local/cuda}
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCUDAToolkit_ROOT="$cuda_root" \
      -DPython3_EXECUTABLE="$(command -v "$PYTHON")" >/dev/null
cmake --build build -j 2
