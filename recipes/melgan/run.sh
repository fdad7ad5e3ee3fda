#!/usr/bin/env bash
# MelGAN end to end: data -> fit -> export -> vocode / render -> eval.
#   recipes/melgan/run.sh [cpu|smoke|maestro|maestro-midi] [DATA_ROOT]
# Without DATA_ROOT a MAESTRO-like corpus is synthesised offline (recipes/stages.sh): for cpu, the
# piano corpus in corpus-piano/; otherwise corpus/.
set -euo pipefail
recipe=${1:-cpu}
data=${2:-}
here=$(cd "$(dirname "$0")" && pwd)
run=runs/melgan-$recipe
# the cpu recipe trains on the piano corpus (several soundfonts, rooms; one piano held out for test)
[ "$recipe" = cpu ] && corpus=${corpus:-piano}

source "$here/../stages.sh"
prepare_data

fit_and_export

synthesise_first_test_piece
waveforge eval "$run/model.safetensors" --data "$data" --split test --seconds 20 --notes -o "$run/eval.json"
