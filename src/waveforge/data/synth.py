"""``waveforge data synth``: a MAESTRO-like piano corpus built offline.

Pieces come from two sources:

* real compositions from the music21 corpus (Bach chorales, Mozart / Haydn / Beethoven quartet
  excerpts, piano pieces by Mozart, Joplin, Chopin, Clara Schumann, C. P. E. Bach), all voices
  played on the piano; skipped with a one-line note when music21 is not installed;
* procedural piano music: scales, arpeggios, chord progressions and melody over accompaniment
  (Alberti, waltz, block-chord and broken-octave patterns) in every key, across the keyboard and
  from pianissimo to fortissimo.

Both are written as a score in beats and then *performed* by one humaniser: a tempo curve (slow
rubato, phrase-final and final ritardandi), onset jitter with melody lead, velocity shaped by
dynamics curve, metre and voice, and sustain-pedal changes written as CC64 events. Each piece is
rendered with FluidSynth (:func:`waveforge.midi.render.render_midi`) to 16-bit PCM **mono** WAV and
laid out exactly like MAESTRO v3 (``<year>/<stem>.midi``, ``<year>/<stem>.wav``,
``maestro-v3.0.0.csv`` and ``.json``), split train / validation / test by piece (~80/10/10, at
least one piece in each).

More than one piano: given several soundfonts, the pieces are spread across them (round-robin
in a seeded order), and ``holdout_soundfont`` puts every piece rendered with that soundfont in the
test split, and no other piece, so the test split measures generalisation to an unseen piano.
With ``acoustics``, each rendered piece is then "recorded" (:mod:`waveforge.audio.room`): a
synthetic room of one of several sizes, a level, an EQ tilt and a little noise. This is rendered
into the corpus rather than applied on the fly, so the reference audio that models learn from and
are evaluated against is one fixed file per piece, as with real recordings, and the corpus stays
byte-identical for a seed. Each piece's soundfont and acoustics are extra metadata columns
(``soundfont``, ``acoustics``), which readers of the MAESTRO layout ignore.

Everything is drawn from ``numpy.random.default_rng((seed, piece_index, ...))``; nothing depends on
the clock, so one seed gives byte-identical MIDI, WAV, CSV and JSON.
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pretty_midi
from tqdm.auto import tqdm

from waveforge.audio.io import save_audio
from waveforge.audio.room import apply_acoustics, draw_acoustics
from waveforge.data.maestro import write_metadata
from waveforge.errors import BadInputError
from waveforge.midi.render import _check_soundfont, default_soundfont, render_length, render_midi
from waveforge.utils.atomic import atomic_path

LOWEST, HIGHEST = 21, 108  # A0, C8
MAESTRO_YEARS = (2004, 2006, 2008, 2009, 2011, 2013, 2014, 2015, 2017, 2018)
MAJOR = (0, 2, 4, 5, 7, 9, 11)
HARMONIC_MINOR = (0, 2, 3, 5, 7, 8, 11)
KEY_NAMES = ("C", "D-flat", "D", "E-flat", "E", "F", "F-sharp", "G", "A-flat", "A", "B-flat", "B")
KEY_NAMES_MINOR = ("C", "C-sharp", "D", "E-flat", "E", "F", "F-sharp", "G", "G-sharp", "A", "B-flat", "B")
PROCEDURAL_COMPOSER = "waveforge (procedural)"
# Roman-numeral progressions as 0-based scale degrees of chord roots.
PROGRESSIONS = (
    (0, 3, 4, 0),
    (0, 5, 3, 4),
    (0, 5, 1, 4),
    (0, 4, 5, 2, 3, 0, 3, 4),
    (0, 3, 6, 2, 5, 1, 4, 0),
    (5, 1, 4, 0),
    (0, 1, 4, 0),
    (0, 3, 0, 4),
)


@dataclass(frozen=True)
class SynthConfig:
    """What :func:`build_corpus` makes.

    Args:
        minutes: total audio wanted; pieces are added until it is reached (at least three pieces).
        seed: the only source of randomness.
        sample_rate: WAV rate in Hz (MAESTRO's recordings are 44.1-48 kHz).
        soundfonts: ``.sf2``/``.sf3`` files for FluidSynth, pieces spread across them; empty uses
            pretty_midi's TimGM6mb.
        holdout_soundfont: a soundfont's file name or stem: its pieces, and only they, form the
            test split (needs at least two soundfonts).
        acoustics: record each piece in a drawn room, level, tilt and noise (:mod:`waveforge.audio.room`).
        use_real: include music21 corpus pieces (when music21 is installed).
        real_fraction: share of pieces drawn from the music21 corpus.
        min_piece_seconds, max_piece_seconds: target length of a piece (tiny corpora use shorter pieces
            so that every split gets one).
    """

    minutes: float
    seed: int
    sample_rate: int = 44100
    soundfonts: tuple[Path, ...] = ()
    holdout_soundfont: str | None = None
    acoustics: bool = False
    use_real: bool = True
    real_fraction: float = 0.4
    min_piece_seconds: float = 20.0
    max_piece_seconds: float = 90.0

    def __post_init__(self):
        if not self.minutes > 0:
            raise BadInputError(None, f"--minutes must be positive, got {self.minutes}")
        if not 8000 <= self.sample_rate <= 96000:
            raise BadInputError(None, f"--sample-rate must be within 8000-96000 Hz, got {self.sample_rate}")
        if not 0 < self.min_piece_seconds <= self.max_piece_seconds:
            raise ValueError("need 0 < min_piece_seconds <= max_piece_seconds")
        if not 0 <= self.real_fraction <= 1:
            raise ValueError("real_fraction must be within [0, 1]")
        names = [_soundfont_name(p) for p in self.soundfonts]
        if len(set(names)) != len(names):
            raise BadInputError(None, f"two soundfonts share a name: {', '.join(names)}")
        if self.holdout_soundfont is not None:
            if self.holdout_soundfont not in names and self.holdout_soundfont not in [Path(p).name for p in self.soundfonts]:
                raise BadInputError(None, f"--holdout-soundfont {self.holdout_soundfont!r} is not one of the soundfonts ({', '.join(names) or 'none given'})")
            if len(names) < 2:
                raise BadInputError(None, "--holdout-soundfont needs at least two soundfonts: the others train")

    def soundfont_paths(self) -> list[Path]:
        return [Path(p) for p in self.soundfonts] or [default_soundfont()]


def _soundfont_name(path: str | os.PathLike) -> str:
    """A soundfont's name in the metadata: its file stem (``FluidR3_GM``)."""
    return Path(path).stem


def assign_soundfonts(splits: list[str], names: list[str], holdout: str | None, rng: np.random.Generator) -> list[str]:
    """One soundfont name per piece: the held-out one for every test piece (when given), the others
    round-robin over the remaining pieces in a seeded order, so each is used about equally."""
    if holdout is not None:
        holdout = next(n for n in names if holdout in (n, n + ".sf2", n + ".sf3"))
    pool = [n for n in names if n != holdout]
    order = rng.permutation(len(splits))
    out = [""] * len(splits)
    k = 0
    for i in order:
        if holdout is not None and splits[int(i)] == "test":
            out[int(i)] = holdout
        else:
            out[int(i)] = pool[k % len(pool)]
            k += 1
    return out


# -- score: notes in beats --------------------------------------------------------------------------

MELODY, INNER, BASS = 0, 1, 2  # voice roles: the melody is voiced out, inner voices kept down


@dataclass
class ScoreNote:
    pitch: int
    beat: float  # onset in quarter-note beats
    length: float  # in beats
    role: int = INNER
    articulation: float = 0.95  # sounding fraction of the written length


@dataclass
class Score:
    """A piece before performance: notes in beats, where the pedal changes, and how to play it."""

    title: str
    composer: str
    notes: list[ScoreNote]
    tempo_bpm: float
    beats_per_bar: float = 4.0
    pedal_changes: list[float] = field(default_factory=list)  # beats at which the pedal is (re)taken
    phrase_beats: float = 16.0

    @property
    def length_beats(self) -> float:
        return max(n.beat + n.length for n in self.notes)


def _fold(pitch: int) -> int:
    """Move a pitch by octaves into the piano's range."""
    while pitch < LOWEST:
        pitch += 12
    while pitch > HIGHEST:
        pitch -= 12
    return pitch


class _Key:
    def __init__(self, tonic: int, minor: bool):
        self.tonic, self.minor = tonic, minor
        self.steps = HARMONIC_MINOR if minor else MAJOR

    def pitch(self, degree: int, octave: int) -> int:
        """MIDI pitch of scale ``degree`` (any integer) counted from the tonic in ``octave`` (C4 = octave 4)."""
        return 12 * (octave + 1) + self.tonic + 12 * (degree // 7) + self.steps[degree % 7]

    def chord(self, root: int, seventh: bool = False) -> list[int]:
        return [root, root + 2, root + 4] + ([root + 6] if seventh else [])

    @property
    def name(self) -> str:
        return f"{KEY_NAMES_MINOR[self.tonic]} minor" if self.minor else f"{KEY_NAMES[self.tonic]} major"


def _progression(rng: np.random.Generator, n_chords: int) -> list[int]:
    chords: list[int] = []
    while len(chords) < n_chords:
        chords.extend(PROGRESSIONS[rng.integers(len(PROGRESSIONS))])
    chords = chords[:n_chords]
    chords[-1] = 0  # end on the tonic
    if n_chords >= 2:
        chords[-2] = 4  # authentic cadence
    return chords


def _score_scales(rng: np.random.Generator, key: _Key, target_beats: float, tempo: float) -> Score:
    notes: list[ScoreNote] = []
    beat, step = 0.0, float(rng.choice([0.25, 1 / 3, 0.5]))
    while beat < target_beats - 4:
        octave = int(rng.integers(1, 6))
        span = int(rng.integers(1, 4)) * 7
        shape = rng.choice(["up", "down", "updown"])
        degrees = list(range(span + 1))
        if shape == "down":
            degrees = degrees[::-1]
        elif shape == "updown":
            degrees = degrees + degrees[-2::-1]
        hands = rng.choice(["octaves", "tenths", "single"], p=[0.4, 0.2, 0.4])
        for d in degrees:
            top = _fold(key.pitch(d, octave + 1))
            notes.append(ScoreNote(top, beat, step, MELODY, 0.9))
            if hands == "octaves":
                notes.append(ScoreNote(_fold(top - 12), beat, step, BASS, 0.9))
            elif hands == "tenths":
                notes.append(ScoreNote(_fold(key.pitch(d - 9, octave + 1)), beat, step, BASS, 0.9))
            beat += step
        beat = math.ceil(beat + 0.5)  # breathe between runs
    final = [ScoreNote(_fold(key.pitch(d, 3)), beat, 4.0, BASS if d == 0 else INNER) for d in (-7, 0, 2, 4)]
    return Score(f"Scale study in {key.name}", PROCEDURAL_COMPOSER, notes + final, tempo, 4.0, [beat], 8.0)


def _score_arpeggios(rng: np.random.Generator, key: _Key, target_beats: float, tempo: float) -> Score:
    beats_per_chord = 4.0
    chords = _progression(rng, max(2, int(target_beats // beats_per_chord)))
    step = float(rng.choice([0.25, 1 / 3]))
    octave, octaves = int(rng.integers(2, 5)), int(rng.integers(1, 4))
    notes, pedal = [], []
    for i, root in enumerate(chords):
        start = i * beats_per_chord
        pedal.append(start)
        notes.append(ScoreNote(_fold(key.pitch(root, octave - 1)), start, beats_per_chord, BASS))
        tones = [key.pitch(d, octave) for o in range(octaves) for d in key.chord(root + 7 * o, seventh=rng.random() < 0.2)]
        pattern = tones + [key.pitch(root + 7 * octaves, octave)] + tones[:0:-1]
        n_steps = int(round(beats_per_chord / step))
        for k in range(n_steps):
            notes.append(ScoreNote(_fold(pattern[k % len(pattern)]), start + k * step, step, MELODY if k == 0 else INNER, 1.0))
    return Score(f"Arpeggio study in {key.name}", PROCEDURAL_COMPOSER, notes, tempo, 4.0, pedal, 16.0)


def _voice_chord(key: _Key, root: int, previous: list[int] | None, octave: int, seventh: bool) -> list[int]:
    """Three upper voices in close position, the inversion nearest the previous chord."""
    degrees = key.chord(root, seventh)[:3] if not seventh else [root, root + 4, root + 6]
    options = []
    for inversion in range(3):
        ds = degrees[inversion:] + [d + 7 for d in degrees[:inversion]]
        options.append([key.pitch(d, octave) for d in ds])
    if previous is None:
        return options[0]
    return min(options, key=lambda v: sum(abs(a - b) for a, b in zip(v, previous)))


def _score_chorale(rng: np.random.Generator, key: _Key, target_beats: float, tempo: float) -> Score:
    beats_per_chord = float(rng.choice([1.0, 2.0]))
    chords = _progression(rng, max(2, int(target_beats // beats_per_chord)))
    octave = int(rng.integers(3, 6))
    notes, pedal, upper = [], [], None
    for i, root in enumerate(chords):
        start = i * beats_per_chord
        length = beats_per_chord * (2 if i == len(chords) - 1 else 1)
        upper = _voice_chord(key, root, upper, octave, seventh=root == 4 and rng.random() < 0.4)
        notes.append(ScoreNote(_fold(key.pitch(root, octave - 2)), start, length, BASS))
        for j, p in enumerate(sorted(upper)):
            notes.append(ScoreNote(_fold(p), start, length, MELODY if j == 2 else INNER))
        pedal.append(start)
    return Score(f"Chorale in {key.name}", PROCEDURAL_COMPOSER, notes, tempo, 4.0, pedal, 8.0 * beats_per_chord)


def _melody(rng: np.random.Generator, key: _Key, chords: list[int], beats_per_bar: float, octave: int) -> list[ScoreNote]:
    """A random walk on the scale, chord tones on strong beats, phrases closing on long notes."""
    rhythms = ([1.0, 1.0, 1.0, 1.0], [1.5, 0.5, 1.0, 1.0], [0.5, 0.5, 1.0, 2.0], [1.0, 0.5, 0.5, 2.0], [0.5] * 8, [2.0, 1.0, 1.0])
    if beats_per_bar == 3:
        rhythms = ([1.0, 1.0, 1.0], [2.0, 1.0], [1.5, 0.5, 1.0], [0.5, 0.5, 1.0, 1.0])
    notes, degree = [], int(rng.choice(key.chord(0)))
    for bar, root in enumerate(chords):
        phrase_end = bar % 4 == 3 or bar == len(chords) - 1
        rhythm = [beats_per_bar] if phrase_end and rng.random() < 0.6 else list(rhythms[rng.integers(len(rhythms))])
        beat = bar * beats_per_bar
        for i, length in enumerate(rhythm):
            strong = i == 0 or length >= 1.5
            if strong:  # nearest chord tone
                tones = [d + 7 * o for d in key.chord(root) for o in (-1, 0, 1)]
                degree = min(tones, key=lambda d: (abs(d - degree), d))
            else:
                degree += int(rng.choice([-2, -1, -1, 1, 1, 2]))
            degree = int(np.clip(degree, -3, 11))
            notes.append(ScoreNote(_fold(key.pitch(degree, octave)), beat, length, MELODY, float(rng.choice([0.95, 0.95, 0.6]))))
            beat += length
    return notes


def _score_melody_accompaniment(rng: np.random.Generator, key: _Key, target_beats: float, tempo: float) -> Score:
    style = str(rng.choice(["alberti", "waltz", "block", "broken-octaves"]))
    beats_per_bar = 3.0 if style == "waltz" else 4.0
    chords = _progression(rng, max(4, int(target_beats // beats_per_bar)))
    octave = int(rng.integers(4, 6))
    notes = _melody(rng, key, chords, beats_per_bar, octave + 1)
    bass_octave = octave - int(rng.integers(1, 3))
    pedal = []
    for bar, root in enumerate(chords):
        start = bar * beats_per_bar
        lo, third, fifth = (key.pitch(d, bass_octave) for d in key.chord(root))
        if style == "alberti":  # 1-5-3-5 in eighths
            for k in range(8):
                notes.append(ScoreNote(_fold((lo, fifth, third, fifth)[k % 4]), start + 0.5 * k, 0.5, INNER if k else BASS, 0.9))
        elif style == "waltz":  # bass on one, chord on two and three
            pedal.append(start)
            notes.append(ScoreNote(_fold(lo - 12), start, 1.0, BASS))
            for b in (1.0, 2.0):
                notes.extend(ScoreNote(_fold(p), start + b, 1.0, INNER, 0.6) for p in (third, fifth, lo + 12))
        elif style == "block":
            pedal.append(start)
            notes.append(ScoreNote(_fold(lo - 12), start, beats_per_bar, BASS))
            for b in range(int(beats_per_bar)):
                notes.extend(ScoreNote(_fold(p), start + b, 1.0, INNER, 0.85) for p in (lo, third, fifth))
        else:  # broken octaves in the bass
            pedal.append(start)
            for k in range(8):
                notes.append(ScoreNote(_fold(lo - 12 * (k % 2)), start + 0.5 * k, 0.5, BASS, 0.9))
    title = {"alberti": "Sonatina", "waltz": "Waltz", "block": "Song without words", "broken-octaves": "Etude"}[style]
    return Score(f"{title} in {key.name}", PROCEDURAL_COMPOSER, notes, tempo, beats_per_bar, pedal, 4 * beats_per_bar)


PROCEDURAL_KINDS = {  # generator, tempo range in quarter notes per minute
    "scales": (_score_scales, (60, 116)),
    "arpeggios": (_score_arpeggios, (56, 100)),
    "chorale": (_score_chorale, (48, 84)),
    "melody": (_score_melody_accompaniment, (64, 140)),
}


def procedural_score(rng: np.random.Generator, target_seconds: float) -> Score:
    """One procedural piece of about ``target_seconds`` (before rubato), in a random key and register."""
    kind = list(PROCEDURAL_KINDS)[rng.integers(len(PROCEDURAL_KINDS))]
    generate, (slowest, fastest) = PROCEDURAL_KINDS[kind]
    key = _Key(int(rng.integers(12)), bool(rng.random() < 0.4))
    tempo = float(rng.uniform(slowest, fastest))
    return generate(rng, key, target_seconds * tempo / 60.0, tempo)


# -- real compositions (music21 corpus) -------------------------------------------------------------

COMPOSERS = {
    "bach": "Johann Sebastian Bach",
    "mozart": "Wolfgang Amadeus Mozart",
    "beethoven": "Ludwig van Beethoven",
    "haydn": "Joseph Haydn",
    "joplin": "Scott Joplin",
    "chopin": "Frédéric Chopin",
    "schumann_clara": "Clara Schumann",
    "cpebach": "Carl Philipp Emanuel Bach",
}


def real_candidates() -> list[str]:
    """music21 corpus paths (relative, sorted) used as real compositions; [] without music21."""
    try:
        from music21 import corpus
    except ImportError:
        return []
    out = []
    for composer in COMPOSERS:
        for p in corpus.getComposer(composer):
            rel = Path(p).as_posix().split("/corpus/")[-1]
            if rel.endswith((".mxl", ".xml", ".krn", ".musicxml")) and "opus133" not in rel:  # the Grosse Fuge is 16 minutes
                out.append(rel)
    return sorted(set(out))


def pick_real(candidates: list[str], rng: np.random.Generator) -> str:
    """Half Bach chorales, half the rest (the 400-odd chorales would otherwise crowd out everything else)."""
    chorales = [c for c in candidates if c.startswith("bach/")]
    others = [c for c in candidates if not c.startswith("bach/")]
    pool = chorales if (rng.random() < 0.5 and chorales) or not others else others
    return pool[int(rng.integers(len(pool)))]


def _title_from_path(rel: str) -> str:
    parts = Path(rel).with_suffix("").parts[1:]
    words = " ".join(parts).replace("_", " ").replace("movement", "mvt. ")
    if rel.startswith("bach/bwv"):
        return f"Chorale BWV {parts[0][3:]}"
    return words[:1].upper() + words[1:]


def real_score(rel: str, rng: np.random.Generator, target_seconds: float) -> Score | None:
    """Parse a music21 corpus file into a Score (all voices on piano), cropped at a bar line near the target."""
    from music21 import corpus

    try:
        parsed = corpus.parse(rel)
        flat = parsed.stripTies().flatten()
    except Exception:  # a corpus file music21 itself cannot parse: the caller falls back to procedural
        return None
    marks = [m.getQuarterBPM() for m in flat.getElementsByClass("MetronomeMark")]
    tempo = float(marks[0]) if marks and marks[0] and 30 < marks[0] < 220 else float(rng.uniform(60, 110))
    signatures = flat.getElementsByClass("TimeSignature")
    bar = float(signatures[0].barDuration.quarterLength) if signatures else 4.0
    cut = max(bar, math.floor(target_seconds * tempo / 60.0 / bar) * bar)
    notes = []
    for element in flat.notes:
        beat, length = float(element.offset), float(element.quarterLength)
        if length <= 0 or beat >= cut:
            continue
        for p in getattr(element, "pitches", ()):
            notes.append(ScoreNote(_fold(int(p.midi)), beat, min(length, cut - beat), INNER))
    if len(notes) < 8:
        return None
    # voice the top line as the melody and the lowest as the bass at each onset
    by_beat: dict[float, list[ScoreNote]] = {}
    for n in notes:
        by_beat.setdefault(n.beat, []).append(n)
    for group in by_beat.values():
        max(group, key=lambda n: n.pitch).role = MELODY
        if len(group) > 1:
            min(group, key=lambda n: n.pitch).role = BASS
    pedal = sorted({n.beat for n in notes if n.role == BASS and n.length >= 1.0}) if rng.random() < 0.7 else []
    composer = COMPOSERS.get(rel.split("/")[0], rel.split("/")[0])
    return Score(_title_from_path(rel), composer, notes, tempo, bar, pedal, 4 * bar)


# -- performance ---------------------------------------------------------------------------------------


def _tempo_map(rng: np.random.Generator, score: Score) -> tuple[np.ndarray, np.ndarray]:
    """Beats and their times in seconds on a 1/48-beat grid, with rubato and ritardandi.

    The local beat period is ``60 / bpm * exp(r(b))`` with ``r`` two slow sinusoids plus a smoothed
    random walk; the last beat and a half of each phrase slows by up to ~12 % and the final bar by 20-40 %.
    """
    end = score.length_beats + 8.0
    beats = np.arange(0.0, end, 1 / 48)
    walk = np.cumsum(rng.normal(0, 0.004, beats.size))
    walk -= np.convolve(walk, np.ones(480) / 480, mode="same")  # keep it a slow wander, not a drift
    r = (
        rng.uniform(0.01, 0.05) * np.sin(2 * np.pi * beats / rng.uniform(7, 13) + rng.uniform(0, 2 * np.pi))
        + rng.uniform(0.01, 0.03) * np.sin(2 * np.pi * beats / rng.uniform(23, 41) + rng.uniform(0, 2 * np.pi))
        + walk
    )
    phrase_pos = np.mod(beats, score.phrase_beats) - (score.phrase_beats - 1.5)
    r += np.where(phrase_pos > 0, rng.uniform(0.05, 0.12) * phrase_pos / 1.5, 0.0)
    final = beats - (score.length_beats - 6.0)  # ramps over the last few onsets, not after them
    r += np.clip(final / 5.0, 0.0, 1.5) * rng.uniform(0.2, 0.4)
    period = 60.0 / score.tempo_bpm * np.exp(r)
    seconds = np.concatenate([[0.0], np.cumsum(period[:-1] / 48)])
    return beats, seconds


def perform(score: Score, rng: np.random.Generator) -> pretty_midi.PrettyMIDI:
    """Humanise ``score`` into a one-track piano MIDI: tempo curve, timing jitter, velocities, CC64 pedal."""
    beats, seconds = _tempo_map(rng, score)

    def at(beat: float) -> float:
        return float(np.interp(beat, beats, seconds))

    lead_in = float(rng.uniform(0.3, 1.0))  # MAESTRO recordings start with a little silence
    dynamic = float(rng.uniform(38, 100))  # the piece's overall level, pp ... ff
    swell = float(rng.uniform(6, 18))  # amplitude of the phrase-level crescendo / diminuendo
    role_offset = {MELODY: 10.0, INNER: -6.0, BASS: 0.0}
    inst = pretty_midi.Instrument(program=0, name="Piano")
    for n in sorted(score.notes, key=lambda n: (n.beat, n.pitch)):
        onset_jitter = rng.normal(0, 0.008) - (0.012 if n.role == MELODY else 0.0)  # melody lead
        start = lead_in + max(0.0, at(n.beat) + onset_jitter)
        end = lead_in + at(n.beat + n.length * n.articulation) + rng.normal(0, 0.01)
        end = max(end, start + 0.04)
        phrase = math.sin(math.pi * (n.beat % score.phrase_beats) / score.phrase_beats)  # swell to mid-phrase
        metre = 6.0 if n.beat % score.beats_per_bar == 0 else (2.0 if n.beat % 1 == 0 else 0.0)
        velocity = dynamic + swell * (phrase - 0.5) + metre + role_offset[n.role] + rng.normal(0, 4)
        inst.notes.append(pretty_midi.Note(int(np.clip(round(velocity), 1, 127)), n.pitch, round(start, 6), round(end, 6)))
    _resolve_overlaps(inst)

    last = max(n.end for n in inst.notes)
    if score.pedal_changes:
        for i, beat in enumerate(score.pedal_changes):
            t = lead_in + at(beat)
            if i:  # legato pedalling: lift just after the new harmony sounds, then catch it again
                up = t + rng.uniform(0.02, 0.06)
                inst.control_changes.append(pretty_midi.ControlChange(64, int(rng.integers(0, 16)), round(up, 6)))
                t = up + rng.uniform(0.06, 0.12)
            else:
                t = t + rng.uniform(0.0, 0.05)
            inst.control_changes.append(pretty_midi.ControlChange(64, int(rng.integers(96, 128)), round(t, 6)))
        inst.control_changes.append(pretty_midi.ControlChange(64, 0, round(last + rng.uniform(0.2, 0.6), 6)))
    midi = pretty_midi.PrettyMIDI(resolution=384, initial_tempo=120.0)
    midi.instruments.append(inst)
    return midi


def _resolve_overlaps(inst: pretty_midi.Instrument) -> None:
    """A piano key sounds once: a note still held when the same key is struck again ends there."""
    inst.notes.sort(key=lambda n: (n.start, n.pitch, -n.end))
    last_by_pitch: dict[int, pretty_midi.Note] = {}
    kept = []
    for note in inst.notes:
        prev = last_by_pitch.get(note.pitch)
        if prev is not None and prev.end > note.start:
            if note.start - prev.start < 0.03:  # the same key struck twice at once (two voices in unison)
                prev.end = max(prev.end, note.end)
                prev.velocity = max(prev.velocity, note.velocity)
                continue
            prev.end = note.start
        last_by_pitch[note.pitch] = note
        kept.append(note)
    inst.notes = kept


# -- the corpus --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CorpusPiece:
    composer: str
    title: str
    split: str
    year: int
    stem: str
    duration: float

    def row(self) -> dict:
        return {
            "canonical_composer": self.composer,
            "canonical_title": self.title,
            "split": self.split,
            "year": self.year,
            "midi_filename": f"{self.year}/{self.stem}.midi",
            "audio_filename": f"{self.year}/{self.stem}.wav",
            "duration": self.duration,
        }


def assign_splits(n_pieces: int, rng: np.random.Generator) -> list[str]:
    """About 80/10/10 train/validation/test by piece, at least one piece in each split (needs >= 3)."""
    if n_pieces < 3:
        raise ValueError("need at least three pieces for three splits")
    n_test = max(1, round(0.1 * n_pieces))
    n_val = max(1, round(0.1 * n_pieces))
    splits = ["test"] * n_test + ["validation"] * n_val + ["train"] * (n_pieces - n_test - n_val)
    order = rng.permutation(n_pieces)
    return [splits[int(i)] for i in order]


def _piece_target_seconds(config: SynthConfig, rng: np.random.Generator) -> float:
    total = config.minutes * 60.0
    if total / 3 < config.min_piece_seconds:  # a tiny corpus: three short pieces, one per split
        return max(4.0, total / 3)
    return float(rng.uniform(config.min_piece_seconds, min(config.max_piece_seconds, max(config.min_piece_seconds, total / 3))))


def build_corpus(out: str | os.PathLike, config: SynthConfig, progress: bool = True) -> list[CorpusPiece]:
    """Write a MAESTRO v3-layout corpus into ``out`` and return its pieces (in metadata order).

    Pieces are composed and performed first (cheap), then split, then given a soundfont (and
    acoustics), then rendered. Files already in ``out`` with the same names are replaced; each
    file is written atomically.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BadInputError(out, "output exists and is not a folder")
    soundfonts = {_soundfont_name(p): p for p in config.soundfont_paths()}
    for path in soundfonts.values():
        _check_soundfont(path)
    candidates = real_candidates() if config.use_real else []
    if config.use_real and not candidates:
        print("waveforge: note: music21 is not installed; building procedural pieces only (pip install 'waveforge[corpus]')", file=sys.stderr)

    target = config.minutes * 60.0
    performed: list[tuple[Score, pretty_midi.PrettyMIDI, int, str, float]] = []  # score, midi, year, stem, duration
    total = 0.0
    while total < target or len(performed) < 3:
        index = len(performed)
        rng = np.random.default_rng((config.seed, index))
        seconds = _piece_target_seconds(config, rng)
        score = None
        if candidates and rng.random() < config.real_fraction:
            score = real_score(pick_real(candidates, rng), rng, seconds)
        if score is None:
            score = procedural_score(rng, seconds)
        midi = perform(score, rng)
        year = MAESTRO_YEARS[int(rng.integers(len(MAESTRO_YEARS)))]
        duration = render_length(midi, config.sample_rate) / config.sample_rate
        performed.append((score, midi, year, f"WF-SYNTH_seed{config.seed}_{index:04d}", duration))
        total += duration

    splits = assign_splits(len(performed), np.random.default_rng((config.seed, 2**31 - 1)))
    names = assign_soundfonts(splits, list(soundfonts), config.holdout_soundfont, np.random.default_rng((config.seed, 2**31 - 2)))
    extra_columns = len(soundfonts) > 1 or config.acoustics or bool(config.soundfonts)
    bar = tqdm(total=round(total), desc="synth", unit="s", disable=not (progress and sys.stderr.isatty()), file=sys.stderr, dynamic_ncols=True, leave=False)
    result, rows = [], []
    for index, ((score, midi, year, stem, duration), split, name) in enumerate(zip(performed, splits, names)):
        audio = render_midi(midi, config.sample_rate, soundfonts[name])
        row_extra = {}
        if config.acoustics:
            acoustics = draw_acoustics(np.random.default_rng((config.seed, index, 1)))
            audio = apply_acoustics(audio, config.sample_rate, acoustics)
            row_extra["acoustics"] = json.dumps(acoustics.to_dict(), sort_keys=True)
        if extra_columns:
            row_extra = {"soundfont": name, **row_extra}
        with atomic_path(out / str(year) / f"{stem}.midi") as tmp:
            midi.write(str(tmp))
        save_audio(out / str(year) / f"{stem}.wav", audio, config.sample_rate)
        piece = CorpusPiece(score.composer, score.title, split, year, stem, round(duration, 6))
        result.append(piece)
        rows.append({**piece.row(), **row_extra})
        bar.update(round(sum(p.duration for p in result)) - bar.n)
    bar.close()
    write_metadata(out, rows)
    return result
