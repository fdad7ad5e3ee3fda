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

first_test=$(python3 - "$data" <<'PY'
import csv, sys
rows = [r for r in csv.DictReader(open(f"{sys.argv[1]}/maestro-v3.0.0.csv")) if r["split"] == "test"]
print(rows[0]["audio_filename"][:-4])
PY
)
if [ "$recipe" = maestro-midi ]; then
  waveforge render "$run/model.safetensors" "$data/$first_test.midi" -o "$run/rendered.wav"
else
  waveforge vocode "$run/model.safetensors" "$data/$first_test.wav" -o "$run/vocoded"
fi
waveforge eval "$run/model.safetensors" --data "$data" --split test -o "$run/eval.json"
