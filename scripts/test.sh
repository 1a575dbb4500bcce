#!/usr/bin/env bash
# The whole test suite on a machine without a GPU: install and build (scripts/setup.sh),
# then the C++ tests (ctest) and the Python tests (pytest). GPU tests skip and say so.
# Then the reliability checks (docs/reliability.md): the C++ tests again under
# AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/), and each libFuzzer target for
# 60 s (scripts/fuzz.sh). TIGON_SKIP_RELIABILITY=1 leaves them out.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
ctest --test-dir build --output-on-failure -j 2
"${PYTHON:-python3}" -m pytest -q tests/python

if [ "${TIGON_SKIP_RELIABILITY:-0}" != 1 ]; then
  # ASan+UBSan over a subset: tigon_sanitize_tests (front end, interpreter, disk cache; no
  # codegen/LLVM), since all of tigon_tests under ASan takes well over 10 minutes on 2 cores.
  # Leak checking off (static state that is never freed).
  cmake -S . -B build-asan -G Ninja -DTIGON_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCUDAToolkit_ROOT="${CUDA_HOME:-/usr/local/cuda}" -DPython3_EXECUTABLE="$(command -v "${PYTHON:-python3}")" >/dev/null
  cmake --build build-asan -j 2 --target tigon_sanitize_tests
  ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 build-asan/tigon_sanitize_tests
  bash scripts/fuzz.sh 60
fi
