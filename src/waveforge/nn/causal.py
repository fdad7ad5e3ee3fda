"""Causal layers for autoregressive waveform models, each with a cached single-step form.

Every layer here has two passes that must agree exactly:

* ``forward(x)`` over a whole sequence ``(B, C, T)`` (the teacher-forced training pass), and
* ``step(x_t, cache)`` for one new time step ``(B, C)``, with a :class:`ConvQueue` holding the
  past inputs the layer needs (Fast WaveNet, Paine et al. 2016: each layer keeps a queue of its
  past inputs, so generating one sample costs O(layers), not O(receptive field)).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvQueue:
    """Ring buffer of the last ``length`` inputs of one causal convolution: ``(B, C, length)``.

    Slot ``t % length`` holds input ``t - length`` until step ``t`` overwrites it with input ``t``;
    it starts filled with zeros, which is exactly the causal left padding of the full pass.
    """

    def __init__(self, batch_size: int, channels: int, length: int, device=None, dtype=torch.float32):
        self.length = length
        self.buffer = torch.zeros(batch_size, channels, max(length, 1), device=device, dtype=dtype)
        self.t = 0

    def taps(self, dilation: int, n_taps: int) -> list[torch.Tensor]:
        """Past inputs ``t - (n_taps - j) * dilation`` for ``j = 0 .. n_taps - 1``, each ``(B, C)``."""
        return [self.buffer[:, :, (self.t - (n_taps - j) * dilation) % self.length] for j in range(n_taps)]

    def push(self, x_t: torch.Tensor) -> None:
        if self.length > 0:
            self.buffer[:, :, self.t % self.length] = x_t
        self.t += 1


class CausalConv1d(nn.Conv1d):
    """Dilated causal convolution: ``(B, C_in, T) -> (B, C_out, T)``.

    Output ``t`` depends on inputs ``t - (kernel_size - 1) * dilation .. t`` only (left zero padding).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1, bias: bool = True):
        if kernel_size < 1 or dilation < 1:
            raise ValueError(f"kernel_size ({kernel_size}) and dilation ({dilation}) must be >= 1")
        super().__init__(in_channels, out_channels, kernel_size, dilation=dilation, bias=bias)
        self.left_padding = (kernel_size - 1) * dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (self.left_padding, 0)))

    def new_queue(self, batch_size: int, device=None, dtype=torch.float32) -> ConvQueue:
        return ConvQueue(batch_size, self.in_channels, self.left_padding, device=device, dtype=dtype)

    def step(self, x_t: torch.Tensor, queue: ConvQueue) -> torch.Tensor:
        """``x_t: (B, C_in)`` -> ``(B, C_out)``; pushes ``x_t`` into ``queue``."""
        k = self.kernel_size[0]
        taps = queue.taps(self.dilation[0], k - 1) + [x_t]  # oldest first, matching the kernel's tap order
        out = F.linear(taps[-1], self.weight[:, :, k - 1], self.bias)
        for j in range(k - 1):
            out = out + F.linear(taps[j], self.weight[:, :, j])
        queue.push(x_t)
        return out


def gated_activation(x: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """WaveNet's gated unit ``tanh(x_f) * sigmoid(x_g)``, splitting ``x`` in two halves along ``dim``."""
    x_filter, x_gate = x.chunk(2, dim=dim)
    return torch.tanh(x_filter) * torch.sigmoid(x_gate)


class GatedResidualBlock(nn.Module):
    """One WaveNet layer (van den Oord et al. 2016, fig. 4).

    ``z = tanh(W_f * x + V_f c) * sigmoid(W_g * x + V_g c)`` with a dilated causal convolution ``*``
    and conditioning ``c`` (already projected to ``gate_channels`` by the caller, see
    :meth:`cond_projection`), then ``residual = x + W_r z`` and ``skip = W_s z`` (1x1 convolutions).

    Shapes: ``x (B, residual_channels, T)``, ``cond_term (B, gate_channels, T)`` or a broadcastable
    ``(B, gate_channels, 1)`` -> ``(residual (B, residual_channels, T), skip (B, skip_channels, T))``.
    """

    def __init__(self, residual_channels: int, gate_channels: int, skip_channels: int, kernel_size: int, dilation: int):
        super().__init__()
        if gate_channels % 2:
            raise ValueError(f"gate_channels must be even (tanh and sigmoid halves), got {gate_channels}")
        self.dilated = CausalConv1d(residual_channels, gate_channels, kernel_size, dilation)
        self.out = nn.Conv1d(gate_channels // 2, residual_channels + skip_channels, 1)
        self.residual_channels = residual_channels

    def forward(self, x: torch.Tensor, cond_term: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.dilated(x)  # (B, gate, T)
        if cond_term is not None:
            h = h + cond_term
        z = gated_activation(h)  # (B, gate/2, T)
        out = self.out(z)  # (B, residual + skip, T)
        return x + out[:, : self.residual_channels], out[:, self.residual_channels :]

    def step(self, x_t: torch.Tensor, queue: ConvQueue, cond_term: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``x_t: (B, residual)``, ``cond_term: (B, gate)`` -> ``((B, residual), (B, skip))``."""
        h = self.dilated.step(x_t, queue)
        if cond_term is not None:
            h = h + cond_term
        z = gated_activation(h, dim=1)
        out = F.linear(z, self.out.weight[:, :, 0], self.out.bias)
        return x_t + out[:, : self.residual_channels], out[:, self.residual_channels :]
