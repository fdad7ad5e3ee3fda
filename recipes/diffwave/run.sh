#!/usr/bin/env sh
# Train, export and try a DiffWave vocoder. Usage: recipes/diffwave/run.sh [smoke|cpu|maestro] [DATA_ROOT]
set -eu
recipe="${1:-smoke}"
data="${2:-corpus}"
run="runs/diffwave-${recipe}"
[ -d "$data" ] || waveforge data synth "$data"
waveforge fit --config "recipes/diffwave/${recipe}.yaml" --data.root "$data" --trainer.default_root_dir "$run"
waveforge export "$run/checkpoints/last.ckpt" -o "$run/diffwave.safetensors"
first_wav="$(find "$data" -name '*.wav' | sort | head -n 1)"
waveforge vocode "$run/diffwave.safetensors" "$first_wav" -o "$run/vocoded" --steps 6
echo "model: $run/diffwave.safetensors, vocoded audio in $run/vocoded"
