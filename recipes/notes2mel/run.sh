#!/usr/bin/env bash
# The two-stage MIDI renderer end to end: data -> fit (notes -> mel) -> export -> eval of the mel stage
# alone -> one file with the vocoder -> render a test piece -> eval (note-level with --notes where available).
#   recipes/notes2mel/run.sh [cpu|cpu-diffusion|smoke|maestro] [DATA_ROOT]
# VOCODER (default runs/melgan-cpu/model.safetensors, from recipes/melgan/run.sh cpu) is the mel vocoder;
# its mel settings must be the recipe's (22.05 kHz, hop 256, 80 bands to 8 kHz).
# Without DATA_ROOT a MAESTRO-like corpus is synthesised offline (recipes/stages.sh): for cpu and
# cpu-diffusion, the piano corpus in corpus-piano/ (several soundfonts, rooms, one piano held out for
# the test split, as for the cpu MelGAN vocoder); otherwise corpus/.
set -euo pipefail
recipe=${1:-cpu}
data=${2:-}
here=$(cd "$(dirname "$0")" && pwd)
run=runs/notes2mel-$recipe
vocoder=${VOCODER:-runs/melgan-cpu/model.safetensors}
case "$recipe" in cpu|cpu-diffusion) corpus=${corpus:-piano} ;; esac

source "$here/../stages.sh"
prepare_data

fit_and_export

# the mel stage on its own: its mel and the reference mel, each through Griffin-Lim; log-mel L1 and band variance
# (FluidSynth's render with pretty_midi's soundfont, not the held-out piano, is the other-instrument baseline)
waveforge eval "$run/model.safetensors" --data "$data" --split test --seconds 20 --notes -o "$run/eval-mel.json"

if [ ! -f "$vocoder" ]; then
  echo "no vocoder at $vocoder: train one (recipes/melgan/run.sh cpu) or set VOCODER, then rerun to compose and render" >&2
  exit 0
fi
waveforge export "$run/model.safetensors" --vocoder "$vocoder" -o "$run/piano.safetensors"
waveforge render "$run/piano.safetensors" "$(waveforge data list "$data" --midi | head -n 1)" -o "$run/rendered.wav"
waveforge eval "$run/piano.safetensors" --data "$data" --split test --seconds 20 --notes -o "$run/eval.json"
