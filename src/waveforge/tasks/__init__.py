"""Lightning tasks, one per training paradigm; importing waveforge.models never needs these."""
