#!/usr/bin/env bash
# MelGAN end to end: data -> fit -> export -> vocode / render -> eval.
#   recipes/melgan/run.sh [cpu|smoke|maestro|maestro-midi] [DATA_ROOT]
# Without DATA_ROOT a MAESTRO-like corpus is synthesised offline into corpus/.
set -euo pipefail
recipe=${1:-cpu}
data=${2:-}
here=$(cd "$(dirname "$0")" && pwd)
run=runs/melgan-$recipe

if [ -z "$data" ]; then
  data=corpus
  [ -f "$data/maestro-v3.0.0.csv" ] || waveforge data synth "$data" --minutes 20 --sample-rate 22050
fi
waveforge data check "$data"

waveforge fit --config "$here/$recipe.yaml" --data.root "$data" --trainer.default_root_dir "$run"
waveforge export "$run/checkpoints/last.ckpt" -o "$run/model.safetensors"

# the first held-out piece, vocoded (or, for the piano-roll recipe, rendered from its MIDI)
if [ "$recipe" = maestro-midi ]; then
  waveforge render "$run/model.safetensors" "$(waveforge data list "$data" --midi | head -n 1)" -o "$run/rendered.wav"
else
  waveforge vocode "$run/model.safetensors" "$(waveforge data list "$data" | head -n 1)" -o "$run/vocoded"
fi
waveforge eval "$run/model.safetensors" --data "$data" --split test -o "$run/eval.json"
