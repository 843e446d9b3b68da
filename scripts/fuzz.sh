#!/usr/bin/env bash
# Builds and runs one libFuzzer target (sources in Tests/Fuzz/) against the package's parsers.
#
#   scripts/fuzz.sh TARGET [DURATION]      TARGET: gguf | safetensors (compressed-tensors included) |
#                                          tokenizer_json | tokenizer_model | recipe (run and training recipes)
#                                          DURATION: 300 or 300s = seconds (default 60), 1000000r = runs
#   scripts/fuzz.sh build                  only build every target
#
# Environment: QWB_FUZZ_ROOT=<checkout> fuzzes another checkout's sources with these harnesses
# (e.g. an older commit: `git worktree add /tmp/fuzz-old <commit>`); QWB_FUZZ_ARGS adds libFuzzer
# flags (e.g. -jobs / -only_ascii); QWB_FUZZ_COVERAGE=1 builds with line coverage and, after the
# run, prints llvm-cov's report of the parser files over the corpus.
# Modules are compiled with swiftc -sanitize=fuzzer,address (each once per root, cached in
# .build-fuzz/); the run uses -timeout=5 -rss_limit_mb=2048. Corpus: .build-fuzz/corpus/…/TARGET,
# seeded from Tests/Fuzz/seeds/TARGET; crashing inputs land in .build-fuzz/findings/TARGET/
# (both per checkout: .build-fuzz/{corpus,findings}/ROOT/TARGET).
# Heavy: wrap it in the shared CPU lock (flock /tmp/qwb-cpu.lock nice -n 19 scripts/fuzz.sh …).
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
ROOT="$(cd "${QWB_FUZZ_ROOT:-$HERE}" && pwd)"
TARGET="${1:?usage: scripts/fuzz.sh TARGET [seconds|Nr]}"
DURATION="${2:-60}"
ROOTTAG="$(basename "$ROOT")-$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo src)"
[ "$ROOT" = "$HERE" ] && ROOTTAG=current
COVER="${QWB_FUZZ_COVERAGE:-0}"
TAG="$ROOTTAG"
[ "$COVER" = 1 ] && TAG="$TAG-cov"
OUT="$HERE/.build-fuzz/$TAG"
mkdir -p "$OUT/cq"
SAN="-sanitize=fuzzer,address"
COVFLAGS=()
[ "$COVER" = 1 ] && COVFLAGS=(-profile-generate -profile-coverage-mapping)
cat > "$OUT/cq/module.modulemap" <<MAP
module CQuantCPU { header "$ROOT/Sources/CQuantCPU/include/CQuantCPU.h"
  export * }
MAP
COMMON=(-parse-as-library -wmo -O -swift-version 5 -I "$OUT" -I "$ROOT/Sources/CYAML"
        -Xcc -fmodule-map-file="$OUT/cq/module.modulemap" $SAN "${COVFLAGS[@]}")

# module NAME DIR [extra flags…]: one object and one .swiftmodule per module, rebuilt when a source is newer.
module() {
    local name="$1" dir="$2"; shift 2
    local srcs; srcs=$(find "$dir" -name '*.swift' -not -path '*/Tests/*' | sort)
    local obj="$OUT/$name.o"
    if [ -f "$obj" ] && [ -z "$(find "$dir" -name '*.swift' -newer "$obj" | head -1)" ]; then return; fi
    echo "fuzz.sh: compiling $name ($ROOT)" >&2
    # shellcheck disable=SC2086
    swiftc "${COMMON[@]}" "$@" -module-name "$name" -emit-module -emit-module-path "$OUT/$name.swiftmodule" \
        -c $srcs -o "$obj"
    touch "$obj"   # the compiler leaves an unchanged object as it was; mark it current
}

build_modules() {
    [ -f "$OUT/cpu.o" ] || clang -O2 -fsanitize=address -c "$ROOT/Sources/CQuantCPU/cpu.c" \
        -I "$ROOT/Sources/CQuantCPU/include" -o "$OUT/cpu.o"
    if [ "$(uname -m)" = x86_64 ]; then
        module QuantKernelsAVX2 "$ROOT/Sources/QuantKernelsAVX2" -target-cpu haswell
        module QuantKernelsAVX512 "$ROOT/Sources/QuantKernelsAVX512" -target-cpu cascadelake
    fi
    module QuantKernels "$ROOT/Sources/QuantKernels"
    module QuantCore "$ROOT/Sources/QuantCore"
    if [ -d "$ROOT/Sources/TrainingQuantization" ]; then module TrainingQuantization "$ROOT/Sources/TrainingQuantization"; fi
    module ModelFormats "$ROOT/Sources/ModelFormats"
    module LlamaModel "$ROOT/Sources/LlamaModel"
    module Recipes "$ROOT/Sources/Recipes"
    for m in RTN SmoothQuant Hadamard DuQuant GPTQ TrainingRTN HadamardQuantizer BitSplitLSS; do
        if [ -d "$ROOT/Plugins/$m" ]; then module "$m" "$ROOT/Plugins/$m"; fi
    done
}

build_target() {
    local t="$1" bin="$OUT/fuzz-$1"
    if [ -f "$bin" ] && [ -z "$(find "$HERE/Tests/Fuzz" "$OUT" -newer "$bin" \( -name '*.swift' -o -name '*.o' \) | head -1)" ]; then return; fi
    echo "fuzz.sh: linking fuzz-$t" >&2
    local link=()
    for f in "${COMMON[@]}"; do [ "$f" = -wmo ] || link+=("$f"); done
    swiftc "${link[@]}" -module-name "fuzz_$t" "$HERE/Tests/Fuzz/Common.swift" "$HERE/Tests/Fuzz/$t.swift" \
        "$OUT"/*.o -lyaml -o "$bin"
}

build_modules
TARGETS=(gguf safetensors tokenizer_json tokenizer_model recipe)
if [ "$TARGET" = build ]; then for t in "${TARGETS[@]}"; do build_target "$t"; done; exit 0; fi
[ -f "$HERE/Tests/Fuzz/$TARGET.swift" ] || { echo "unknown target $TARGET (known: ${TARGETS[*]})" >&2; exit 2; }
build_target "$TARGET"

CORPUS="$HERE/.build-fuzz/corpus/$ROOTTAG/$TARGET"
FINDINGS="$HERE/.build-fuzz/findings/$ROOTTAG/$TARGET"
mkdir -p "$CORPUS" "$FINDINGS"
cp -n "$HERE/Tests/Fuzz/seeds/$TARGET"/* "$CORPUS"/ 2>/dev/null || true
case "$DURATION" in
    *r) LIMIT=(-runs="${DURATION%r}") ;;
    *s) LIMIT=(-max_total_time="${DURATION%s}") ;;
    *)  LIMIT=(-max_total_time="$DURATION") ;;
esac
DICT=()
[ -f "$HERE/Tests/Fuzz/$TARGET.dict" ] && DICT=(-dict="$HERE/Tests/Fuzz/$TARGET.dict")
cd "$OUT"
set +e
# shellcheck disable=SC2086
ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=1}" \
LLVM_PROFILE_FILE="$OUT/$TARGET-%p.profraw" \
"$OUT/fuzz-$TARGET" "$CORPUS" "${LIMIT[@]}" "${DICT[@]}" -timeout=5 -rss_limit_mb=2048 -max_len=65536 \
    -artifact_prefix="$FINDINGS/" -print_final_stats=1 ${QWB_FUZZ_ARGS:-}
STATUS=$?
set -e
if [ "$COVER" = 1 ]; then
    # The toolchain's own llvm-profdata / llvm-cov (a system LLVM cannot read its newer profiles).
    TOOLS="$(dirname "$(command -v swiftc)")"
    PROFDATA=llvm-profdata; COV=llvm-cov
    [ -x "$TOOLS/llvm-profdata" ] && PROFDATA="$TOOLS/llvm-profdata"
    [ -x "$TOOLS/llvm-cov" ] && COV="$TOOLS/llvm-cov"
    "$PROFDATA" merge -sparse "$OUT/$TARGET"-*.profraw -o "$OUT/$TARGET.profdata"
    rm -f "$OUT/$TARGET"-*.profraw
    case "$TARGET" in
        gguf) FILES=("$ROOT"/Sources/ModelFormats/{GGUFCheckpoint,GGUFFile,GGUFValue,MappedFile,Checkpoint}.swift) ;;
        safetensors) FILES=("$ROOT"/Sources/ModelFormats/Safetensors*.swift "$ROOT"/Sources/ModelFormats/CompressedTensors.swift "$ROOT"/Sources/ModelFormats/Checkpoint.swift) ;;
        tokenizer_json) FILES=("$ROOT/Sources/ModelFormats/Tokenizer/BPETokenizer+TokenizerJSON.swift" "$ROOT/Sources/ModelFormats/Tokenizer/BPETokenizer.swift") ;;
        tokenizer_model) FILES=("$ROOT/Sources/ModelFormats/Tokenizer/SentencePieceTokenizer.swift") ;;
        recipe) FILES=("$ROOT"/Sources/Recipes/*.swift) ;;
    esac
    "$COV" report "$OUT/fuzz-$TARGET" -instr-profile="$OUT/$TARGET.profdata" "${FILES[@]}"
fi
exit $STATUS
