"""Lightning tasks, one per training paradigm; importing waveforge.models never needs these.

gan (MelGAN), autoregressive (WaveNet, SampleRNN), vqvae, flow (WaveGlow), diffusion (DiffWave),
notes2mel (the two-stage renderer's notes-to-mel stage: regression and spectrogram diffusion).
"""
