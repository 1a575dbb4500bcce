#!/usr/bin/env bash
# Copies the stripped binaries the GPU machine needs into .gpu/ (ignored by git), to be
# carried there; LLVM is linked in statically and the CUDA driver is loaded at run time.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --build build -j 2 --target tigon tigon_gpu_check tigon_backend_compare tigon_torch
rm -rf .gpu && mkdir -p .gpu
for b in tigon tigon_gpu_check tigon_backend_compare tigon_kernel_bench libtigon.so libtigon_torch.so; do strip -o ".gpu/$b" "build/$b"; done
du -sh .gpu
