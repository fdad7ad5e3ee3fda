# Stages shared by the recipes' run.sh scripts. Source it after setting:
#   recipe (smoke, cpu, maestro, ...), data (DATA_ROOT or empty), here (the recipe folder), run (the run folder).

# Without DATA_ROOT, a MAESTRO-like corpus of $corpus_minutes minutes (default 20) is synthesised
# offline into corpus/ (corpus<minutes>/ for another size) once; then the folder is validated, so a
# bad file stops the recipe before any training.
#
# With corpus=piano, the corpus is the piano corpus instead (corpus-piano/, 30 minutes by default):
# the pieces spread over Debian's soundfonts (scripts/ensure-soundfonts.sh installs them), each
# recorded in a synthetic room (--acoustics), and MuseScore_General held out as the test split.
prepare_data() {
  if [ -z "$data" ] && [ "${corpus:-}" = piano ]; then
    local minutes=${corpus_minutes:-30}
    data=corpus-piano
    [ "$minutes" = 30 ] || data=corpus-piano$minutes
    if [ ! -f "$data/maestro-v3.0.0.csv" ]; then
      local args=() font
      while read -r font; do args+=(--soundfont "$font"); done < <(bash "$here/../../scripts/ensure-soundfonts.sh")
      [ ${#args[@]} -ge 4 ] && printf '%s\n' "${args[@]}" | grep -q MuseScore_General && args+=(--holdout-soundfont MuseScore_General)
      waveforge data synth "$data" --minutes "$minutes" --sample-rate 22050 --seed 1 --acoustics "${args[@]}"
    fi
  elif [ -z "$data" ]; then
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
