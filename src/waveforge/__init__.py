"""waveforge: waveform-domain music generation."""

__version__ = "0.1.0"


def load(path):
    """Load an exported ``.safetensors`` model as a :class:`~waveforge.inference.Synthesizer`."""
    from waveforge.inference.synthesizer import Synthesizer

    return Synthesizer.load(path)


__all__ = ["__version__", "load"]
