#!/usr/bin/env bash
# Train, export and try a WaveNet vocoder.  Usage: recipes/wavenet/run.sh [smoke|cpu|maestro] DATA_ROOT
set -euo pipefail
recipe="${1:-smoke}"
root="${2:-corpus}"
run="runs/wavenet-${recipe}"
waveforge fit --config "recipes/wavenet/${recipe}.yaml" --data.root "${root}" --trainer.default_root_dir "${run}"
waveforge export "${run}/checkpoints/last.ckpt" -o "${run}/wavenet.safetensors"
first_wav="$(find "${root}" -name '*.wav' | sort | head -n 1)"
waveforge vocode "${run}/wavenet.safetensors" "${first_wav}" -o "${run}/vocoded"
echo "model: ${run}/wavenet.safetensors  vocoded: ${run}/vocoded/"
