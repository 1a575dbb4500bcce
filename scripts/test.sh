#!/usr/bin/env bash
# The whole test suite on a machine without a GPU: install and build (scripts/setup.sh),
# then the C++ tests (ctest) and the Python tests (pytest). GPU tests skip and say so.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
ctest --test-dir build --output-on-failure -j 2
"${PYTHON:-python3}" -m pytest -q tests/python
