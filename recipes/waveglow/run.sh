#!/usr/bin/env bash
# Train WaveGlow and export it: ./recipes/waveglow/run.sh [smoke|cpu|maestro|maestro-midi] DATA_ROOT [extra fit args...]
set -euo pipefail
recipe=${1:-smoke}
data=${2:-corpus}
shift $(( $# > 2 ? 2 : $# ))
here=$(cd "$(dirname "$0")" && pwd)
run=runs/waveglow-$recipe
waveforge fit --config "$here/$recipe.yaml" --data.root "$data" --trainer.default_root_dir "$run" "$@"
waveforge export "$run/checkpoints/last.ckpt" -o "$run/waveglow-$recipe.safetensors"
echo "exported $run/waveglow-$recipe.safetensors"
