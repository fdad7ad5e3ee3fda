"""waveforge: waveform-domain music generation."""

__version__ = "0.1.0"


def load(name_or_path):
    """Load an exported ``.safetensors`` model, or a shipped one by name (``"piano"``,
    ``"piano-vocoder"``; ``waveforge models`` lists them), as a :class:`~waveforge.inference.Synthesizer`."""
    from waveforge.inference.synthesizer import Synthesizer

    return Synthesizer.load(name_or_path)


__all__ = ["__version__", "load"]
