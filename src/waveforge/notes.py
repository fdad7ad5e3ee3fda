"""Note-level evaluation: which notes a piece of audio plays, judged by a piano transcriber.

Spectral metrics (MR-STFT, LSD, mel L1) are blind to a wrong note that sounds plausible and to a
smear that plays no note at all. Here the audio is transcribed by transkun, a piano transcriber
whose checkpoint ships inside its pip package (nothing is downloaded), and the transcription is
scored against the piece's MIDI with ``mir_eval.transcription``:

* note-onset precision, recall and F1, 50 ms onset tolerance, offsets ignored;
* note-with-offset F1 (offset within 20% of the note's length or 50 ms, mir_eval's default).

The reference notes are the notes *as played*, without the sustain pedal's extension, because that
is what the transcriber was trained to predict. When only the first ``seconds`` of a piece are
synthesised, only the notes that start within them count, with their ends clipped there.

transkun's checkpoint is a pickle (``torch.load(weights_only=False)``). It is the installed
package's own file, never user input; it is the one pickle waveforge loads, and only here.
"""

from __future__ import annotations

import importlib.resources
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from waveforge.errors import BadInputError

ONSET_TOLERANCE = 0.05  # seconds: mir_eval's and the literature's standard
MIN_NOTE_SECONDS = 1e-3  # mir_eval needs end > start
INSTALL_HINT = "note-level evaluation needs transkun and mir_eval: pip install 'waveforge[notes]'"


@dataclass(frozen=True)
class NoteList:
    """Notes as arrays: ``intervals (N, 2)`` onset/offset seconds, ``pitches (N,)`` MIDI numbers,
    ``velocities (N,)`` 1-127."""

    intervals: np.ndarray
    pitches: np.ndarray
    velocities: np.ndarray

    def __len__(self) -> int:
        return len(self.pitches)

    @classmethod
    def from_tuples(cls, notes: list[tuple[float, float, int, int]]) -> "NoteList":
        """From ``(start, end, pitch, velocity)`` tuples; ends are kept strictly after starts."""
        if not notes:
            return cls(np.zeros((0, 2)), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
        arr = np.array([(s, max(e, s + MIN_NOTE_SECONDS)) for s, e, _, _ in notes], dtype=np.float64)
        pitches = np.array([p for _, _, p, _ in notes], dtype=np.int64)
        velocities = np.array([v for _, _, _, v in notes], dtype=np.int64)
        order = np.lexsort((pitches, arr[:, 0]))
        return cls(arr[order], pitches[order], velocities[order])

    def shifted(self, seconds: float) -> "NoteList":
        return NoteList(self.intervals + seconds, self.pitches, self.velocities)


def midi_notes(midi, seconds: float | None = None) -> NoteList:
    """The notes of a MIDI file (path or ``pretty_midi.PrettyMIDI``) as played, pedal ignored.

    With ``seconds``, only notes starting before it are kept, and their ends are clipped to it.
    """
    from waveforge.midi.roll import load_midi, sustained_notes

    if not hasattr(midi, "instruments"):
        midi = load_midi(midi)
    limit = np.inf if seconds is None else float(seconds)
    kept = [
        (n.start, min(n.end, limit), n.pitch, n.velocity)
        for n in sustained_notes(midi, sustain=False)
        if n.start < limit - MIN_NOTE_SECONDS
    ]
    return NoteList.from_tuples(kept)


def note_scores(reference: NoteList, estimated: NoteList, onset_tolerance: float = ONSET_TOLERANCE) -> dict[str, float]:
    """``mir_eval`` note scores of ``estimated`` against ``reference``.

    Returns onset precision / recall / F1 (offsets ignored), note-with-offset F1, and the note
    counts. With no reference notes, every score is 0 unless nothing was estimated either (then 1:
    silence transcribed as silence is right).
    """
    transcription = _mir_eval_transcription()
    out = {"n_reference": len(reference), "n_estimated": len(estimated)}
    if len(reference) == 0 or len(estimated) == 0:
        value = 1.0 if len(reference) == len(estimated) else 0.0
        return {"onset_precision": value, "onset_recall": value, "onset_f1": value, "offset_f1": value, **out}
    ref_hz, est_hz = _midi_to_hz(reference.pitches), _midi_to_hz(estimated.pitches)
    p, r, f, _ = transcription.precision_recall_f1_overlap(
        reference.intervals, ref_hz, estimated.intervals, est_hz, onset_tolerance=onset_tolerance, offset_ratio=None
    )
    _, _, f_off, _ = transcription.precision_recall_f1_overlap(
        reference.intervals, ref_hz, estimated.intervals, est_hz, onset_tolerance=onset_tolerance
    )
    return {"onset_precision": float(p), "onset_recall": float(r), "onset_f1": float(f), "offset_f1": float(f_off), **out}


def _midi_to_hz(pitches: np.ndarray) -> np.ndarray:
    return 440.0 * 2.0 ** ((pitches.astype(np.float64) - 69.0) / 12.0)


def _mir_eval_transcription():
    try:
        import mir_eval.transcription
    except ImportError:
        raise BadInputError(None, INSTALL_HINT) from None
    return mir_eval.transcription


def notes_available() -> bool:
    """Whether the ``notes`` extra (transkun, mir_eval) is installed."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("transkun", "mir_eval", "moduleconf"))


class Transcriber:
    """transkun's pretrained piano transcriber, loaded from its package data.

    >>> notes = Transcriber().transcribe(audio, 22050)   # audio: (T,) or (1, T) float
    """

    def __init__(self, device: str | torch.device = "cpu"):
        if not notes_available():
            raise BadInputError(None, INSTALL_HINT)
        import moduleconf

        root = importlib.resources.files("transkun") / "pretrained"
        conf_path, weight_path = Path(str(root / "2.0.conf")), Path(str(root / "2.0.pt"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit.script and checkpoint deprecations inside transkun
            manager = moduleconf.parseFromFile(str(conf_path))
            model = manager["Model"].module.TransKun(conf=manager["Model"].config)
            # The package's own checkpoint: a pickle, never user input (see the module docstring).
            checkpoint = torch.load(weight_path, map_location=device, weights_only=False)
        state = checkpoint.get("best_state_dict", checkpoint.get("state_dict"))
        model.load_state_dict(state, strict=False)
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.sample_rate = int(model.fs)

    def transcribe(self, audio: torch.Tensor | np.ndarray, sample_rate: int) -> NoteList:
        """Notes in mono ``audio (T,)`` or ``(1, T)`` at ``sample_rate``."""
        from waveforge.audio.io import resample

        x = torch.as_tensor(audio, dtype=torch.float32).reshape(-1)
        if not torch.isfinite(x).all():
            raise BadInputError(None, "cannot transcribe audio that holds NaN or infinity")
        x = resample(x, sample_rate, self.sample_rate)
        stereo = x.unsqueeze(1).expand(-1, 2).contiguous().to(self.device)  # transkun reads (T, 2)
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")
            notes = self.model.transcribe(stereo, discardSecondHalf=False)
        # transkun also reports pedals as events whose pitch is minus the controller number (-64
        # sustain, -67 soft): they are not notes, and counting them would score each as a wrong note
        return NoteList.from_tuples([(float(n.start), float(n.end), int(n.pitch), int(n.velocity)) for n in notes if int(n.pitch) >= 0])


def transcribe_file(path: str | os.PathLike, transcriber: Transcriber | None = None, seconds: float | None = None) -> NoteList:
    """Notes in an audio file (its first ``seconds`` if given)."""
    from waveforge.audio.io import audio_info, load_audio

    transcriber = transcriber or Transcriber()
    frames = -1 if seconds is None else int(np.ceil(seconds * audio_info(path).sample_rate))
    return transcriber.transcribe(load_audio(path, transcriber.sample_rate, frames=frames), transcriber.sample_rate)
