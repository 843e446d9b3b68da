#!/usr/bin/env bash
# Runs the test suite under the sanitizers, each in its own build directory:
#   1. ThreadSanitizer on the kernel, worker-pool and KV-cache decoder tests (the persistent pool's spinning
#      workers, atomics and semaphores; every parallel kernel):
#        swift test --sanitize=thread --scratch-path .build-tsan --filter 'QuantKernelsTests|LlamaDecoderTests'
#   2. AddressSanitizer on the whole suite:
#        swift test --sanitize=address --scratch-path .build-asan
# Usage: scripts/sanitizers.sh [thread|address|all]   (default all). Heavy (several minutes each
# from clean): run it under the shared CPU lock, e.g. flock /tmp/qwb-cpu.lock scripts/sanitizers.sh
set -euo pipefail
cd "$(dirname "$0")/.."
WHICH="${1:-all}"
status=0
if [ "$WHICH" = thread ] || [ "$WHICH" = all ]; then
    echo "== ThreadSanitizer: kernel and worker-pool tests" >&2
    TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1 second_deadlock_stack=1}" \
        swift test --sanitize=thread --scratch-path .build-tsan --filter 'QuantKernelsTests|LlamaDecoderTests' || status=1
fi
if [ "$WHICH" = address ] || [ "$WHICH" = all ]; then
    echo "== AddressSanitizer: whole suite" >&2
    ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0}" \
        swift test --sanitize=address --scratch-path .build-asan || status=1
fi
exit $status
