#!/usr/bin/env bash
# The one-shot GPU check (benchmarks/gpu_check.py): on a machine with an NVIDIA GPU, in a source
# checkout, installing nothing, ~8 minutes; the report goes to $OUT.
#     OUT=/path/to/report bash benchmarks/gpu_check.sh [options of gpu_check.py]
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python3}" -m benchmarks.gpu_check --out "${OUT:?set OUT to the report folder}" "$@"
