"""Speed figures per family, registered with waveforge.bench.register."""
