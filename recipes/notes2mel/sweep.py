"""Notes-to-mel models against sampling settings, on one protocol (the recipe README's second table).

    python recipes/notes2mel/sweep.py MODEL [MODEL ...] --data corpus-piano --vocoder runs/melgan-cpu/model.safetensors \
        --settings 8:1 8:2 16:1      # STEPS:GUIDANCE; "-:1" for a regression model

For each model and setting, on the test split's pieces (first --seconds each, seed 0): the mel stage's
log-mel L1 to the reference's and its per-band variance over time (means over pieces), and the onset
precision / recall / F1 of its mel through the vocoder, transcribed (onsets pooled over the pieces).
One JSON line per row. `waveforge eval` gives the per-piece figures of one setting with its baselines;
this is the cheaper loop for sweeps (no baselines, no Griffin-Lim).
"""

from __future__ import annotations

import argparse
import json

import torch

import waveforge
from waveforge.audio.io import load_audio
from waveforge.audio.mel import MelSpectrogram
from waveforge.data.maestro import MaestroIndex
from waveforge.inference.families import SynthesisOptions
from waveforge.inference.twostage import band_variance
from waveforge.notes import Transcriber, midi_notes, note_scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--data", required=True)
    parser.add_argument("--vocoder", required=True)
    parser.add_argument("--settings", nargs="+", default=["-:1"], help="STEPS:GUIDANCE ('-': the model's default steps)")
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()

    vocoder = waveforge.load(args.vocoder)
    transcriber = Transcriber()
    pieces = MaestroIndex(args.data).split("test")
    for path in args.models:
        notes = waveforge.load(path)
        rate, hop = notes.mel_config.sample_rate, notes.mel_config.hop_length
        n_samples, n_frames = int(args.seconds * rate), int(args.seconds * rate / hop)
        analysis = MelSpectrogram(notes.mel_config)
        references = [analysis(torch.as_tensor(load_audio(p.audio_path, rate)).reshape(1, -1)[:, :n_samples])[..., :n_frames] for p in pieces]
        for setting in args.settings:
            steps, guidance = setting.split(":")
            options = SynthesisOptions(seed=0, steps=None if steps == "-" else int(steps), guidance=float(guidance))
            matched = estimated = expected = 0.0
            l1 = variance = 0.0
            for piece, reference in zip(pieces, references):
                with torch.inference_mode():
                    mel = notes.render_mel(piece.midi_path, options)[..., :n_frames]
                    audio = vocoder.vocode(mel).reshape(-1)[:n_samples]
                n = min(mel.shape[-1], reference.shape[-1])
                l1 += float((mel[..., :n] - reference[..., :n]).abs().mean()) / len(pieces)
                variance += band_variance(mel) / len(pieces)
                scores = note_scores(midi_notes(piece.midi_path, args.seconds), transcriber.transcribe(audio, rate))
                matched += scores["onset_precision"] * scores["n_estimated"]
                estimated += scores["n_estimated"]
                expected += scores["n_reference"]
            precision, recall = matched / max(estimated, 1.0), matched / max(expected, 1.0)
            print(json.dumps({
                "model": path, "steps": steps, "guidance": float(guidance),
                "onset_precision": round(precision, 3), "onset_recall": round(recall, 3),
                "onset_f1": round(2 * precision * recall / max(precision + recall, 1e-9), 3),
                "log_mel_l1": round(l1, 3), "band_variance": round(variance, 3),
            }), flush=True)


if __name__ == "__main__":
    main()
