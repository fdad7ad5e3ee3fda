"""Checks on a model file before its model is built: metadata, shapes, dtypes, values, sizes.

A model file is input like any other: its metadata may contradict itself and its tensors may not
fit its config. The family's ``build`` is first run on the ``meta`` device (no memory, no
arithmetic), so a config that asks for a huge model, a missing or extra tensor and a shape that
differs from the stored one all fail before anything is allocated, and every failure becomes
one :class:`BadInputError` naming the file.
"""

from __future__ import annotations

import torch
from torch import nn

from waveforge.audio.mel import MelConfig
from waveforge.errors import BadInputError
from waveforge.inference.families import FamilyAdapter
from waveforge.inference.modelfile import ModelFile
from waveforge.utils.limits import check_parameters, check_sample_rate


def check_metadata(where: str, model_file: ModelFile) -> None:
    """The sample rate is sane and the feature agrees with the model config and the sample rate."""
    check_sample_rate(where, model_file.sample_rate)
    feature = model_file.feature
    if feature is None:
        return
    if feature.sample_rate != model_file.sample_rate:
        raise BadInputError(where, f"metadata contradicts itself: sample_rate {model_file.sample_rate} but the feature's is {feature.sample_rate}")
    if not (isinstance(feature.hop_length, int) and feature.hop_length >= 1):
        raise BadInputError(where, f"feature hop_length must be a positive integer, got {feature.hop_length!r}")
    configs = [model_file.model_config, *(v for v in model_file.model_config.values() if isinstance(v, dict))]
    for config in configs:
        hop = config.get("hop_length")
        if hop is not None and model_file.family != "vqvae" and hop != feature.hop_length:
            raise BadInputError(where, f"metadata contradicts itself: the feature's hop_length is {feature.hop_length}, the model's {hop}")
        channels = config.get("cond_channels")
        if isinstance(channels, int) and channels > 0 and channels != feature.channels:
            raise BadInputError(where, f"metadata contradicts itself: the feature has {feature.channels} channels, the model takes {channels}")
    if isinstance(feature, MelConfig) and not 1 <= feature.n_mels <= feature.n_fft:
        raise BadInputError(where, f"feature n_mels {feature.n_mels} is out of range")


def check_tensors(where: str, state_dict: dict[str, torch.Tensor]) -> None:
    """Floating weights must be finite: a diverged (NaN) model would vocode to full-scale DC."""
    for name, tensor in state_dict.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise BadInputError(where, f"tensor {name!r} holds NaN or infinite values (a diverged model?)")


def _does_not_fit(where: str, family: str, e: Exception) -> BadInputError:
    message = " ".join(str(e).split()).replace("Error(s) in loading state_dict for ", "")
    return BadInputError(where, f"model file does not fit its {family} config ({type(e).__name__}: {message[:240]})")


def _meta_limitation(e: Exception) -> bool:
    """Whether a build failed only because the meta device has no data (a family whose
    constructor looks at values, e.g. WaveGlow's random orthogonal init checks a determinant)."""
    return isinstance(e, NotImplementedError) or "meta" in str(e).lower()


def check_build(where: str, adapter: FamilyAdapter, model_file: ModelFile) -> None:
    """Build the model on the meta device against meta copies of the stored tensors.

    Families whose construction needs real values skip this pass; :func:`build_model` still turns
    their failures into one line."""
    stored = model_file.state_dict
    meta_state = {k: torch.empty(v.shape, dtype=v.dtype, device="meta") for k, v in stored.items()}
    try:
        with torch.device("meta"):
            model = adapter.build(model_file.model_config, meta_state)
    except BadInputError:
        raise
    except Exception as e:  # the config or the tensors do not fit the family: any error here is the file's
        if _meta_limitation(e):
            return
        raise _does_not_fit(where, model_file.family, e) from None
    if isinstance(model, nn.Module):
        check_parameters(where, sum(p.numel() for p in model.parameters()))
        # integer tensors are allowed only where the built model keeps an integer buffer of that name
        # (counters, code tables); integers loaded into float weights would pass unnoticed
        integer_names = {n for n, b in model.named_buffers() if not b.is_floating_point()}
        for name, tensor in stored.items():
            if not tensor.is_floating_point() and name not in integer_names:
                raise BadInputError(where, f"tensor {name!r} is {str(tensor.dtype).removeprefix('torch.')}; the model's weights are floating point")


def build_model(where: str, adapter: FamilyAdapter, model_file: ModelFile) -> nn.Module:
    """Check the file (:func:`check_model_file`), then build the model; a build error is the file's."""
    check_model_file(where, adapter, model_file)
    try:
        return adapter.build(model_file.model_config, model_file.state_dict)
    except BadInputError:
        raise
    except Exception as e:
        raise _does_not_fit(where, model_file.family, e) from None


def check_model_file(where: str, adapter: FamilyAdapter, model_file: ModelFile) -> None:
    check_metadata(where, model_file)
    check_tensors(where, model_file.state_dict)
    check_build(where, adapter, model_file)
