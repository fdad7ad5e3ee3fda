"""DiffWave: a preconditioned denoiser sampled by a chosen sampler and step count.

Long inputs are synthesised in chunks (bounded memory: the prepared conditioning holds
``n_layers * 2 * residual_channels`` floats per sample). Diffusion chunks are not bit-identical to a
whole pass (each chunk draws its own noise), but each chunk sees ``CONTEXT_FRAMES`` of context
on both sides (twice one pass's receptive field for the base model), so seams carry no edge effects.
"""

from __future__ import annotations

import torch

from waveforge.diffusion import Denoiser, DiffusionModel, SamplingConfig
from waveforge.errors import BadInputError
from waveforge.inference.families import FamilyAdapter, SynthesisOptions
from waveforge.models.diffwave import DiffWave, DiffWaveConfig

#: frames of context each side of a chunk
CONTEXT_FRAMES = 24


class DiffWaveAdapter(FamilyAdapter):
    name = "diffwave"

    def build(self, model_config: dict, state_dict: dict[str, torch.Tensor]) -> DiffusionModel:
        model = DiffWave(DiffWaveConfig(**model_config["diffwave"]))
        model.load_state_dict(state_dict)
        denoiser = Denoiser(model, model_config["prediction"], model_config["sigma_data"])
        return DiffusionModel(denoiser, SamplingConfig(**model_config.get("sampling", {}))).eval()

    def context_frames(self, model: DiffusionModel) -> int:
        return CONTEXT_FRAMES

    def synthesize(self, model: DiffusionModel, cond: torch.Tensor | None, n_samples: int, options: SynthesisOptions) -> torch.Tensor:
        try:
            SamplingConfig(**{**model.sampling.to_dict(), **({"sampler": options.sampler} if options.sampler else {}),
                              **({"steps": options.steps} if options.steps is not None else {})})
        except ValueError as e:
            raise BadInputError(None, str(e)) from None
        return model.generate(
            cond,
            n_samples,
            batch_size=options.batch_size,
            progress=options.progress,
            steps=options.steps,
            sampler=options.sampler,
            guidance=options.guidance if cond is not None else None,
        )


ADAPTER = DiffWaveAdapter()
