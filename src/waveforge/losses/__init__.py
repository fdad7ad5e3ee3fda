"""Training losses: GAN objectives and feature matching, multi-resolution STFT, log-spectral distance, mel L1."""

from waveforge.losses.gan import (
    GANLossKind,
    discriminator_loss,
    feature_matching_loss,
    generator_loss,
    hinge_discriminator_loss,
    hinge_generator_loss,
    lsgan_discriminator_loss,
    lsgan_generator_loss,
)
from waveforge.losses.stft import (
    DEFAULT_RESOLUTIONS,
    MultiResolutionSTFTLoss,
    STFTLossResult,
    log_spectral_distance_loss,
    mel_l1_loss,
    mr_stft_loss_per_item,
    multi_resolution_stft_loss,
    stft_loss_terms,
)

__all__ = [
    "DEFAULT_RESOLUTIONS",
    "GANLossKind",
    "MultiResolutionSTFTLoss",
    "STFTLossResult",
    "discriminator_loss",
    "feature_matching_loss",
    "generator_loss",
    "hinge_discriminator_loss",
    "hinge_generator_loss",
    "lsgan_discriminator_loss",
    "log_spectral_distance_loss",
    "lsgan_generator_loss",
    "mel_l1_loss",
    "mr_stft_loss_per_item",
    "multi_resolution_stft_loss",
    "stft_loss_terms",
]
