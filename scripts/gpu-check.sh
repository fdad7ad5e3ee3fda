#!/usr/bin/env bash
# The GPU check (issue 21): bf16-mixed training of every family's recipes/<family>/maestro.yaml for
# 50 batches on a procedural corpus it builds, then GPU inference figures; JSON lines on stdout.
# About 8 minutes on one H100. Arguments go to `python -m waveforge.benchmarks.gpu`:
#   scripts/gpu-check.sh                        on cuda, the work folder under $TMPDIR (or /tmp)
#   scripts/gpu-check.sh --dry-run              every case on the CPU with tiny models (CI, ~1 minute)
#   scripts/gpu-check.sh --only train:wavenet   some cases; --work DIR keeps the corpus between runs
# PYTHON picks the interpreter (default: .venv/bin/python when present, else python3).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-}"
if [[ -z "$PYTHON" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
exec "$PYTHON" -m waveforge.benchmarks.gpu "$@"
