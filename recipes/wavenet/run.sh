#!/usr/bin/env bash
# WaveNet end to end: data -> fit -> export -> vocode / render -> eval (NLL beside baselines).
#   recipes/wavenet/run.sh [cpu|smoke|maestro|maestro-midi] [DATA_ROOT]
# Without DATA_ROOT a MAESTRO-like corpus is synthesised offline into corpus/ (recipes/stages.sh).
# Autoregressive synthesis is slow for the paper-size model (~200 samples/s on 2 CPU cores),
# so eval synthesises 10 s of two test pieces.
set -euo pipefail
recipe=${1:-cpu}
data=${2:-}
here=$(cd "$(dirname "$0")" && pwd)
run=runs/wavenet-$recipe

source "$here/../stages.sh"
prepare_data

fit_and_export

synthesise_first_test_piece
waveforge eval "$run/model.safetensors" --data "$data" --split test --max-pieces 2 -o "$run/eval.json"
