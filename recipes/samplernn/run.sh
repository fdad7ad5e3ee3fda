#!/usr/bin/env bash
# SampleRNN end to end: data -> fit -> export -> sample -> eval (NLL beside baselines).
#   recipes/samplernn/run.sh [cpu|smoke|maestro] [DATA_ROOT]
# Without DATA_ROOT a MAESTRO-like corpus is synthesised offline into corpus/ (recipes/stages.sh).
set -euo pipefail
recipe=${1:-cpu}
data=${2:-}
here=$(cd "$(dirname "$0")" && pwd)
run=runs/samplernn-$recipe

source "$here/../stages.sh"
prepare_data

fit_and_export
waveforge sample "$run/model.safetensors" --seconds 4 --seed 0 -o "$run/sample.wav"
waveforge eval "$run/model.safetensors" --data "$data" --split test -o "$run/eval.json"
