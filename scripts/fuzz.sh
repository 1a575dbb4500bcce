#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/*.cpp) with clang 14 and
# -fsanitize=fuzzer,address,undefined into build-fuzz/, then runs each for SECONDS
# (default 60) from the seed corpus tests/fuzz/corpus/. New inputs go to build-fuzz/corpus-*
# (not committed); a crash leaves build-fuzz/crash-* and fails the script.
# The project sources are compiled directly (libtigon.so is built with g++), fmt header-only.
# Usage: bash scripts/fuzz.sh [SECONDS] [TARGET...]   (targets: frontend backend)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then targets=(frontend backend); fi

CXX=${FUZZ_CXX:-/usr/bin/clang++-14}
[ -x "$CXX" ] || CXX=/usr/bin/clang++
out=build-fuzz
mkdir -p "$out/obj"
flags=(-std=c++17 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined
       -fno-sanitize-recover=undefined -DFMT_HEADER_ONLY -I. -w)
llvm_config=${LLVM_CONFIG:-llvm-config-19}

# compile one source into build-fuzz/obj (again only when the source or a header is newer)
compile() {  # src extra-flags...
  local src=$1; shift
  local obj="$out/obj/$(echo "$src" | tr / _).o"
  if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] ||
     [ -n "$(find dsl runtime codegen tests/fuzz -name '*.h' -newer "$obj" | head -1)" ]; then
    "$CXX" "${flags[@]}" "$@" -c "$src" -o "$obj"
  fi
  echo "$obj"
}

build_frontend() {
  local objs=() s
  for s in dsl/*.cpp runtime/interpreter.cpp runtime/kernel_args.cpp tests/fuzz/fuzz_frontend.cpp; do
    objs+=("$(compile "$s")")
  done
  "$CXX" -fsanitize=fuzzer,address,undefined "${objs[@]}" -o "$out/fuzz_frontend"
}

build_backend() {
  local objs=() s llvm_inc
  llvm_inc=$("$llvm_config" --includedir)
  for s in dsl/*.cpp; do objs+=("$(compile "$s")"); done
  for s in codegen/*.cpp tests/fuzz/fuzz_backend.cpp; do
    objs+=("$(compile "$s" -isystem "$llvm_inc")")
  done
  # shellcheck disable=SC2046
  "$CXX" -fsanitize=fuzzer,address,undefined "${objs[@]}" -o "$out/fuzz_backend" \
    $("$llvm_config" --link-static --ldflags) \
    $("$llvm_config" --link-static --libs nvptx core passes support target) \
    $("$llvm_config" --link-static --system-libs | sed 's/-lzstd/-l:libzstd.a/') -ldl -lpthread
}

status=0
for t in "${targets[@]}"; do
  echo "== fuzz_$t: build"
  "build_$t"
  mkdir -p "$out/corpus-$t" "$out/artifacts-$t"
  echo "== fuzz_$t: ${seconds}s"
  if ! "$out/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=1100000 \
       -print_final_stats=1 -artifact_prefix="$out/artifacts-$t/" \
       "$out/corpus-$t" tests/fuzz/corpus 2>"$out/fuzz_$t.log"; then
    status=1
    echo "fuzz_$t FAILED: see $out/fuzz_$t.log and $out/artifacts-$t/"
    tail -60 "$out/fuzz_$t.log"
  fi
  grep -E '^(#[0-9]+ *DONE|stat::number_of_executed_units|stat::peak_rss_mb)' "$out/fuzz_$t.log" || true
done
exit $status
