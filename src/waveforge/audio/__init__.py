"""Signal processing with no learning: file I/O, resampling, mu-law, the hop-aligned STFT, log-mel, Griffin-Lim."""

from waveforge.audio.griffinlim import griffin_lim, mel_to_linear
from waveforge.audio.io import AudioInfo, audio_info, load_audio, resample, save_audio
from waveforge.audio.mel import MelConfig, MelSpectrogram, log_mel_spectrogram, mel_filterbank
from waveforge.audio.mulaw import mu_law_decode, mu_law_encode
from waveforge.audio.stft import hop_aligned_istft, hop_aligned_stft, stft_magnitude

__all__ = [
    "AudioInfo",
    "MelConfig",
    "MelSpectrogram",
    "audio_info",
    "griffin_lim",
    "hop_aligned_istft",
    "hop_aligned_stft",
    "load_audio",
    "log_mel_spectrogram",
    "mel_filterbank",
    "mel_to_linear",
    "mu_law_decode",
    "mu_law_encode",
    "resample",
    "save_audio",
    "stft_magnitude",
]
