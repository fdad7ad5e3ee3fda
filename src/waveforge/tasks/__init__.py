"""waveforge.tasks"""
