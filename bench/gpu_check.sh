#!/usr/bin/env bash
# The prepared GPU check of the trainer (issue #15 item 6): SFT and GRPO steps on CUDA in bf16
# with a tiny random Qwen2 and the HF engine; peak memory, tokens/s and the memory plan's
# estimate beside the measured peak. What it measures: bench/gpu_check.py's docstring.
#
# Usage, from the repository root:
#   bash bench/gpu_check.sh [TOKENIZER_DIR] [extra bench/gpu_check.py options]
# TOKENIZER_DIR defaults to .toolenv-cache/gpu_check_tokenizer (made on the build machine by
# `python bench/gpu_check.py --prepare-assets`, 3.4 MiB; carry it to the GPU machine); when it is
# missing the check runs tokenizer-free (random ids), when named and missing it fails.
# Environment: PYTHON (the interpreter; default: the first of python3, python that imports
# torch), GPU_CHECK_DEVICE (default cuda), GPU_CHECK_TIMEOUT (seconds, default 480), OUT (when
# set, $OUT/gpu_check.json receives every number).
# Exit status: the check's (non-zero on any failure), 124 when it timed out.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1

tokenizer=".toolenv-cache/gpu_check_tokenizer"
named=0
if [ $# -gt 0 ] && [[ "$1" != --* ]]; then
    tokenizer="$1"
    named=1
    shift
fi

python="${PYTHON:-}"
if [ -z "$python" ]; then
    for candidate in python3 python; do
        if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c "import torch" >/dev/null 2>&1; then
            python="$candidate"
            break
        fi
    done
fi
if [ -z "$python" ]; then
    echo "gpu_check: no python that imports torch (set PYTHON)" >&2
    exit 1
fi

echo "== nvidia-smi"
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi || echo "(nvidia-smi failed: $?)"
else
    echo "(no nvidia-smi on PATH)"
fi

args=(--device "${GPU_CHECK_DEVICE:-cuda}")
if [ -f "$tokenizer/tokenizer_config.json" ]; then
    args+=(--tokenizer "$tokenizer")
elif [ "$named" = 1 ]; then
    echo "gpu_check: no tokenizer in $tokenizer (no tokenizer_config.json)" >&2
    exit 1
else
    echo "gpu_check: no tokenizer folder at $tokenizer: running tokenizer-free (random ids)"
    args+=(--tokenizer none)
fi
if [ -n "${OUT:-}" ]; then
    args+=(--json "$OUT/gpu_check.json")
fi

echo "== $python bench/gpu_check.py ${args[*]} $*"
timeout -k 15 "${GPU_CHECK_TIMEOUT:-480}" "$python" bench/gpu_check.py "${args[@]}" "$@"
status=$?
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    echo "gpu_check: timed out after ${GPU_CHECK_TIMEOUT:-480} s" >&2
fi
exit "$status"
