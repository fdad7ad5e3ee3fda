"""waveforge.losses"""
