"""Loading exported models and turning conditioning into audio."""

from waveforge.inference.families import SynthesisOptions
from waveforge.inference.modelfile import ModelFile, convert_model_file, read_model_file, save_model_file
from waveforge.inference.synthesizer import Synthesizer

__all__ = ["ModelFile", "convert_model_file", "SynthesisOptions", "Synthesizer", "read_model_file", "save_model_file"]
