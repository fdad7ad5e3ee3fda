"""waveforge.diffusion"""
