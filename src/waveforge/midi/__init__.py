"""MIDI parsing, sustain handling, piano-roll features and the FluidSynth renderer."""

from waveforge.midi.render import default_soundfont, render_midi
from waveforge.midi.roll import N_KEYS, Note, PianoRollConfig, load_midi, piano_roll, sustained_notes

__all__ = ["N_KEYS", "Note", "PianoRollConfig", "default_soundfont", "load_midi", "piano_roll", "render_midi", "sustained_notes"]
