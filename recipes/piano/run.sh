#!/usr/bin/env bash
# The shipped models (src/waveforge/pretrained/), reproduced from the project's own recipes:
#   corpus-piano -> MelGAN vocoder (recipes/melgan/cpu.yaml, then cpu-mel.yaml) -> notes-to-mel (recipes/notes2mel/cpu.yaml)
#   -> one composed renderer file -> float16 copies -> eval of float32 and float16 -> (install) the package files.
#   recipes/piano/run.sh [install]
# With "install", the float16 files and their sizes go to src/waveforge/pretrained/ (the cards are written by hand
# from recipes/piano/model-card-template.md and the eval JSON). Both fits are seeded (seed_everything: 0) and run
# to a step budget (max_steps), on one machine's CPU threads (WAVEFORGE_THREADS, default: the idle cores).
set -euo pipefail
install=${1:-}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=runs/piano
data=
corpus=piano  # recipes/stages.sh: corpus-piano/, 30 min, 22.05 kHz, seed 1, --acoustics, three soundfonts, MuseScore_General held out
mkdir -p "$out"

source "$here/../stages.sh"
prepare_data

# 1. the mel vocoder: recipes/melgan/cpu.yaml on the piano corpus, in the run folder of `recipes/melgan/run.sh cpu`
#    (a finished run there is resumed at its last step, so it is only exported again), then its fine-tune with
#    mel projection, recipes/melgan/cpu-mel.yaml (init_from that run's last checkpoint)
here=$root/recipes/melgan recipe=cpu run=runs/melgan-cpu fit_and_export
here=$root/recipes/melgan recipe=cpu-mel run=runs/melgan-cpu-mel fit_and_export
# 2. the notes-to-mel stage: recipes/notes2mel/cpu.yaml on the same corpus, as `recipes/notes2mel/run.sh cpu`
here=$root/recipes/notes2mel recipe=cpu run=runs/notes2mel-cpu fit_and_export
here=$root/recipes/piano

# 3. one renderer file (notes-to-mel + the vocoder), then both in float16
waveforge export runs/notes2mel-cpu/model.safetensors --vocoder runs/melgan-cpu-mel/model.safetensors -o "$out/piano-float32.safetensors"
cp runs/melgan-cpu-mel/model.safetensors "$out/piano-vocoder-float32.safetensors"
for name in piano piano-vocoder; do
  waveforge export "$out/$name-float32.safetensors" --dtype float16 -o "$out/$name.safetensors"
done

# 4. float32 and float16 on the same held-out pieces (the MuseScore_General test split), note-level too;
#    FluidSynth's baseline renders with pretty_midi's TimGM6mb: another instrument than the held-out one
#    the vocoder's Griffin-Lim baseline runs 32 iterations, as the issue's target says
for file in piano-float32 piano; do
  waveforge eval "$out/$file.safetensors" --data "$data" --split test --seconds 20 --notes -o "$out/eval-$file.json"
done
for file in piano-vocoder-float32 piano-vocoder; do
  waveforge eval "$out/$file.safetensors" --data "$data" --split test --seconds 20 --notes --griffin-lim-iters 32 -o "$out/eval-$file.json"
done
waveforge render "$out/piano.safetensors" "$(waveforge data list "$data" --midi | head -n 1)" -o "$out/rendered.wav"

ls -l "$out"/piano*.safetensors
if [ "$install" = install ]; then
  cp "$out/piano.safetensors" "$out/piano-vocoder.safetensors" "$root/src/waveforge/pretrained/"
  waveforge models
fi
