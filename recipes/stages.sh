# Stages shared by the recipes' run.sh scripts. Source it after setting:
#   recipe (smoke, cpu, maestro, ...), data (DATA_ROOT or empty), here (the recipe folder), run (the run folder).

# Without DATA_ROOT, a MAESTRO-like corpus of $corpus_minutes minutes (default 20) is synthesised
# offline into corpus/ (corpus<minutes>/ for another size) once; then the folder is validated, so a
# bad file stops the recipe before any training.
prepare_data() {
  if [ -z "$data" ]; then
    local minutes=${corpus_minutes:-20}
    data=corpus
    [ "$minutes" = 20 ] || data=corpus$minutes
    [ -f "$data/maestro-v3.0.0.csv" ] || waveforge data synth "$data" --minutes "$minutes" --sample-rate 22050 --seed 1
  fi
  waveforge data check "$data"
}

# fit (resuming from $run/checkpoints/last.ckpt when present), then export $run/model.safetensors
fit_and_export() {
  waveforge fit --config "$here/$recipe.yaml" --data.root "$data" --trainer.default_root_dir "$run" "$@"
  waveforge export "$run/checkpoints/last.ckpt" -o "$run/model.safetensors"
}

# the first held-out piece, vocoded (or, for a piano-roll recipe, rendered from its MIDI);
# arguments are synthesis options (--steps 6, ...)
synthesise_first_test_piece() {
  if [ "$recipe" = maestro-midi ]; then
    waveforge render "$run/model.safetensors" "$(waveforge data list "$data" --midi | head -n 1)" -o "$run/rendered.wav" "$@"
  else
    waveforge vocode "$run/model.safetensors" "$(waveforge data list "$data" | head -n 1)" -o "$run/vocoded" "$@"
  fi
}
