#!/usr/bin/env bash
# Hierarchical VQ-VAE end to end: data -> three autoencoders -> top prior -> two upsamplers
# -> export -> sample, encode, decode.
#   recipes/vqvae/run.sh [smoke|cpu|maestro] [DATA_ROOT]
# Without DATA_ROOT a MAESTRO-like corpus is synthesised offline into corpus/ (cpu: corpus60/, 60 minutes).
# Each stage starts from the previous stage's last.ckpt (--model.init_args.init_from), which holds
# every part trained so far; the last checkpoint therefore exports the whole hierarchy.
# Re-running resumes: a finished stage's fit returns at once.
set -euo pipefail
recipe=${1:-cpu}
data=${2:-}
here=$(cd "$(dirname "$0")" && pwd)
run=runs/vqvae-$recipe

# The cpu recipe's offline corpus is 60 minutes: its test split (7 pieces, 5.4 min) is large enough
# to measure codebook usage; the 20-minute corpus's 2 test pieces (84 s) play too little of the music.
case "$recipe" in  # per-stage budgets: crops long enough to fill the priors' context
  smoke)   ae_steps=6;      prior_steps=6;      prior_segment=8192 ;;
  cpu)     ae_steps=3000;   prior_steps=2000;   prior_segment=32768; corpus_minutes=60 ;;
  maestro) ae_steps=500000; prior_steps=500000; prior_segment=262144 ;;
  *) echo "unknown recipe $recipe (smoke, cpu, maestro)" >&2; exit 2 ;;
esac

source "$here/../stages.sh"
prepare_data

previous=""
stage() {  # NAME STAGE LEVEL STEPS [more fit arguments]
  local name=$1 kind=$2 level=$3 steps=$4
  shift 4
  local init=()
  if [ -n "$previous" ]; then init=(--model.init_args.init_from "$previous"); fi
  waveforge fit --config "$here/$recipe.yaml" --data.root "$data" --trainer.default_root_dir "$run/$name" \
    --model.init_args.stage "$kind" --model.init_args.level "$level" --trainer.max_steps "$steps" "${init[@]}" "$@"
  previous="$run/$name/checkpoints/last.ckpt"
}

# top-down: with condition_on_above a level's decoder needs the trained level above it
stage autoencoder-2 autoencoder 2 "$ae_steps"
stage autoencoder-1 autoencoder 1 "$ae_steps"
stage autoencoder-0 autoencoder 0 "$ae_steps"
stage prior-2 prior 2 "$prior_steps" --data.segment_length "$prior_segment"
stage upsampler-1 prior 1 "$prior_steps" --data.segment_length "$prior_segment"
stage upsampler-0 prior 0 "$prior_steps" --data.segment_length "$prior_segment"

waveforge export "$previous" -o "$run/model.safetensors"
waveforge sample "$run/model.safetensors" --seconds 4 --seed 0 -o "$run/sample.wav"

first_test=$(waveforge data list "$data" | head -n 1)
waveforge encode "$run/model.safetensors" "$first_test" -o "$run/test-codes.npz"
for level in 0 1 2; do
  waveforge decode "$run/model.safetensors" "$run/test-codes.npz" --level "$level" -o "$run/test-decoded-level$level.wav"
done
# held-out metrics per level (reconstruction MR-STFT, codebook usage, prior bits per code)
waveforge eval "$run/model.safetensors" --data "$data" --split test -o "$run/eval.json"
