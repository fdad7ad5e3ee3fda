#!/usr/bin/env bash
# Train, export and sample a SampleRNN.  Usage: recipes/samplernn/run.sh [smoke|maestro] DATA_ROOT
set -euo pipefail
recipe="${1:-smoke}"
root="${2:-corpus}"
run="runs/samplernn-${recipe}"
waveforge fit --config "recipes/samplernn/${recipe}.yaml" --data.root "${root}" --trainer.default_root_dir "${run}"
waveforge export "${run}/checkpoints/last.ckpt" -o "${run}/samplernn.safetensors"
waveforge sample "${run}/samplernn.safetensors" --seconds 2 -o "${run}/sample.wav"
echo "model: ${run}/samplernn.safetensors  sample: ${run}/sample.wav"
