#!/usr/bin/env bash
# GPU check of tunegate training (LoRA, QLoRA, full; bf16): tokens/s, MFU, peak reserved memory vs
# the VRAM plan, written to bench/results/gpu.json. Needs a CUDA machine; finishes within 8 minutes.
#
#   bench/gpu_check.sh                      # llama100m (random init, ~100M params), 30 steps each
#   bench/gpu_check.sh --model stories260k  # the tiny real Llama from $TUNEGATE_SHARED
#   bench/gpu_check.sh --dry-run            # print what would run (also works without CUDA)
#
# Exit: 0 all methods ran, 1 a method failed or timed out (its error is in gpu.json),
#       2 no CUDA / bad arguments, 124 the 8-minute limit was hit.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
if [ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ]; then PY=.venv/bin/python; fi
export PYTHONPATH="${PWD}/src${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
# 480 s in all: the Python side gives each method at most 140 s (3 methods + setup fit in 8 minutes).
exec timeout --kill-after=10 480 "$PY" bench/gpu_check.py "$@"
