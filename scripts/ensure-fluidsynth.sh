#!/usr/bin/env bash
# FluidSynth's shared library is a system package; pyfluidsynth only binds to it.
set -euo pipefail
have_lib() { ldconfig -p 2>/dev/null | grep -q 'libfluidsynth\.so' || [ -n "$(ls /opt/homebrew/lib/libfluidsynth* /usr/local/lib/libfluidsynth* 2>/dev/null)" ]; }
have_lib && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing libfluidsynth3 with apt-get" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libfluidsynth3) >/dev/null
  have_lib && exit 0
fi
echo "waveforge needs the FluidSynth library: install libfluidsynth3 (Debian/Ubuntu: sudo apt-get install libfluidsynth3; macOS: brew install fluid-synth)" >&2
exit 1
