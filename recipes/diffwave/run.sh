#!/usr/bin/env bash
# DiffWave end to end: data -> fit -> export -> vocode / render -> eval at 6, 12 and 50 steps.
#   recipes/diffwave/run.sh [cpu|smoke|maestro|maestro-midi|uncond] [DATA_ROOT]
# Without DATA_ROOT a MAESTRO-like corpus is synthesised offline into corpus/ (recipes/stages.sh).
set -euo pipefail
recipe=${1:-cpu}
data=${2:-}
here=$(cd "$(dirname "$0")" && pwd)
run=runs/diffwave-$recipe

source "$here/../stages.sh"
prepare_data

fit_and_export

if [ "$recipe" = uncond ]; then  # no condition, so nothing to compare with: listen to samples
  waveforge sample "$run/model.safetensors" --seconds 4 --num 2 --steps 50 -o "$run/sample.wav"
  exit 0
fi
synthesise_first_test_piece --steps 6
waveforge eval "$run/model.safetensors" --data "$data" --split test --steps 6 -o "$run/eval.json"
for steps in 12 50; do
  waveforge eval "$run/model.safetensors" --data "$data" --split test --steps "$steps" -o "$run/eval-$steps.json"
done
