#!/usr/bin/env bash
# The piano corpus (`waveforge data synth --soundfont ...`) renders with several pianos. Debian ships
# three General MIDI soundfonts with usable pianos; install them the way ensure-fluidsynth.sh installs
# libfluidsynth3: with apt-get when root, otherwise say what to install. Prints the soundfonts found,
# one path per line, on stdout.
set -euo pipefail
fonts=(/usr/share/sounds/sf2/FluidR3_GM.sf2 /usr/share/sounds/sf3/MuseScore_General.sf3 /usr/share/sounds/sf2/TimGM6mb.sf2)
packages=(fluid-soundfont-gm musescore-general-soundfont timgm6mb-soundfont)
missing=()
for i in "${!fonts[@]}"; do [ -f "${fonts[$i]}" ] || missing+=("${packages[$i]}"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing ${missing[*]} with apt-get" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") >/dev/null
  else
    echo "the piano corpus wants more soundfonts: install ${missing[*]} (Debian/Ubuntu: sudo apt-get install ${missing[*]})" >&2
  fi
fi
for f in "${fonts[@]}"; do [ -f "$f" ] && echo "$f"; done
exit 0
