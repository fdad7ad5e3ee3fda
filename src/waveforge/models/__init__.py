"""waveforge.models"""
