#!/usr/bin/env bash
# DiffWave end to end: data -> fit -> export -> vocode / render -> eval at 6, 12 and 50 steps.
#   recipes/diffwave/run.sh [cpu|smoke|maestro|maestro-midi|uncond] [DATA_ROOT]
# Without DATA_ROOT a MAESTRO-like corpus is synthesised offline into corpus/.
set -euo pipefail
recipe=${1:-cpu}
data=${2:-}
here=$(cd "$(dirname "$0")" && pwd)
run=runs/diffwave-$recipe

if [ -z "$data" ]; then
  data=corpus
  [ -f "$data/maestro-v3.0.0.csv" ] || waveforge data synth "$data" --minutes 20 --sample-rate 22050
fi
waveforge data check "$data"

waveforge fit --config "$here/$recipe.yaml" --data.root "$data" --trainer.default_root_dir "$run"
waveforge export "$run/checkpoints/last.ckpt" -o "$run/model.safetensors"

if [ "$recipe" = uncond ]; then  # no condition, so nothing to compare with: listen to samples
  waveforge sample "$run/model.safetensors" --seconds 4 --num 2 --steps 50 -o "$run/sample.wav"
  exit 0
fi
# the first held-out piece, vocoded (or, for the piano-roll recipe, rendered from its MIDI)
if [ "$recipe" = maestro-midi ]; then
  waveforge render "$run/model.safetensors" "$(waveforge data list "$data" --midi | head -n 1)" -o "$run/rendered.wav" --steps 6
else
  waveforge vocode "$run/model.safetensors" "$(waveforge data list "$data" | head -n 1)" -o "$run/vocoded" --steps 6
fi
waveforge eval "$run/model.safetensors" --data "$data" --split test --steps 6 -o "$run/eval.json"
for steps in 12 50; do
  waveforge eval "$run/model.safetensors" --data "$data" --split test --steps "$steps" -o "$run/eval-$steps.json"
done
