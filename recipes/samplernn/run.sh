#!/usr/bin/env bash
# SampleRNN end to end: data -> fit -> export -> sample -> eval (NLL beside baselines).
#   recipes/samplernn/run.sh [cpu|smoke|maestro] [DATA_ROOT]
# Without DATA_ROOT a MAESTRO-like corpus is synthesised offline into corpus/.
set -euo pipefail
recipe=${1:-cpu}
data=${2:-}
here=$(cd "$(dirname "$0")" && pwd)
run=runs/samplernn-$recipe

if [ -z "$data" ]; then
  data=corpus
  [ -f "$data/maestro-v3.0.0.csv" ] || waveforge data synth "$data" --minutes 20 --sample-rate 22050
fi
waveforge data check "$data"

waveforge fit --config "$here/$recipe.yaml" --data.root "$data" --trainer.default_root_dir "$run"
waveforge export "$run/checkpoints/last.ckpt" -o "$run/model.safetensors"
waveforge sample "$run/model.safetensors" --seconds 4 --seed 0 -o "$run/sample.wav"
waveforge eval "$run/model.safetensors" --data "$data" --split test -o "$run/eval.json"
