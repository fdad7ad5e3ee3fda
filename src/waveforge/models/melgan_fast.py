"""A faster CPU inference path for :class:`~waveforge.models.melgan.MelGANGenerator`, same outputs.

Where the time goes and what helps (AVX-512, MKL/oneDNN; efficiencies are FLOPs over one thread's
GEMM peak, measured in CPU time because the development machine was shared):

* **Coarse threads instead of a barrier per op.** The reference module with 2 intra-op threads splits
  every conv and every LeakyReLU across an OpenMP team; on a busy machine each barrier waits for a
  descheduled thread, and even idle it pays a sync per op. Here the input is cut into one time chunk
  per worker (each with ``receptive_field_frames`` of context, computed and dropped, so nothing changes)
  and the chunks run concurrently on Python threads with single-threaded ops: one join per call.
* **Wide stages stay on oneDNN.** With >= 128 channels oneDNN's single-threaded convolutions reach
  ~0.75 of peak; those stages run as ordinary weight-norm-folded convolutions.
* **Narrow stages become time-major GEMMs.** At 64 and 32 channels oneDNN drops to ~0.4-0.6, and these
  stages carry a third of the FLOPs. Activations there are ``(T, C)`` row-major, so each conv is one
  matrix product over contiguous row blocks: the dilated width-3 conv reads an im2col block
  ``[h(t - d), h(t), h(t + d)]`` (``K = 3C``); the residual unit's 1x1 conv and its 1x1 shortcut are one
  GEMM over ``[lrelu(u), x]`` (``K = 2C``), written straight into the next unit's input buffer.
* **Polyphase transposed convolutions.** A stride-``r`` transposed conv with kernel ``2r`` is ``r``
  ordinary convs ("phases") with two taps each; phase ``j`` produces samples ``n r + j``. In time-major
  layout those rows are a strided matrix view, so each phase's GEMM writes its samples into place: no
  zero-stuffing, no col2im scatter, no interleaving copy.
* **Fused activations.** Each LeakyReLU is applied while an im2col block is filled (the reflection
  padding falls out of the same copy) or in place on a GEMM output; ``addmm`` adds the biases.
* **Cache tiling.** Each GEMM stage (transposed conv plus residual stack) runs over time tiles of about
  1 MiB; a tile carries the stack's halo (13 samples for dilations 1, 3, 9) and reflection padding
  is applied only at the signal's true ends, so tiling changes nothing in the result.

Tried and dropped: ``torch.compile`` (inductor, freezing) compiled for two minutes and ran slower
than eager on this machine; folding the biases into the GEMMs through a column of ones (odd ``K``)
was slower than ``addmm``'s broadcast copy.

The module is inference-only and built from a generator's current weights (weight norm folded).
Outputs equal ``MelGANGenerator.forward`` to float32 rounding (the GEMMs sum in a different order).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn.functional as F
from torch import nn

from waveforge.models.melgan import MelGANGenerator, _transposed_conv_geometry

__all__ = ["FastMelGANGenerator", "prepare_for_inference"]

#: Upsampling stages with at least this many output channels run on oneDNN's convolutions by default:
#: with one thread they reach ~0.75 of GEMM peak there, a little more than the time-major GEMMs; with
#: 64 and 32 channels the time-major GEMMs win (oneDNN ~0.4-0.6). Measured on AVX-512, CPU time.
ONEDNN_MIN_CHANNELS = 128

_leaky_relu_out = torch._C._nn.leaky_relu  # leaky_relu(input, slope, out=...) writes into a strided view


def _register_weight(module: nn.Module, name: str, tensor: torch.Tensor) -> None:
    """Frozen parameters (not buffers), so ``next(model.parameters())`` finds the device as for any model."""
    module.register_parameter(name, nn.Parameter(tensor, requires_grad=False))


def _fill_taps(dst: torch.Tensor, x: torch.Tensor, start: int, shifts: list[int], slope: float, mode: str) -> None:
    """Fill im2col columns ``dst[:, k C:(k+1) C] = lrelu(x[start + t + shifts[k]])`` for ``t in range(len(dst))``.

    Rows of ``x`` outside ``[0, len(x))`` are the signal's ends: ``mode="reflect"`` mirrors them
    (reflection padding, as in the residual units) and ``mode="zeros"`` zeroes them (a transposed
    convolution's implicit padding).
    """
    m, n, c = dst.shape[0], x.shape[0], x.shape[1]
    for k, s in enumerate(shifts):
        col = dst[:, k * c : (k + 1) * c]  # (m, C) with row stride len(shifts) * C
        lo = start + s  # source row of destination row 0
        a, b = max(lo, 0), min(lo + m, n)
        if b > a:
            _leaky_relu_out(x[a:b], slope, out=col[a - lo : b - lo])
        if lo < 0:
            rows = min(-lo, m)
            if mode == "reflect":  # x[-i] -> x[i]: rows lo .. lo + rows - 1 read x[-lo] .. x[-lo - rows + 1]
                _leaky_relu_out(x[-lo - rows + 1 : -lo + 1].flip(0), slope, out=col[:rows])
            else:
                col[:rows].zero_()
        if lo + m > n:
            first = max(n - lo, 0)
            rows = m - first
            if mode == "reflect":  # x[n - 1 + i] -> x[n - 1 - i]
                src = x[2 * n - 1 - lo - m : 2 * n - 1 - lo - first].flip(0)
                _leaky_relu_out(src, slope, out=col[first:])
            else:
                col[first:].zero_()


class _FastUpsampleStage(nn.Module):
    """One upsampling stage (LeakyReLU, polyphase transposed conv, residual stack) on time-major tiles."""

    def __init__(self, stage, slope: float, tile_bytes: int):
        super().__init__()
        self.slope = slope
        self.factor = r = stage.factor
        conv = stage.upsample
        c_out = conv.out_channels
        c_in = conv.in_channels
        self.c_in, self.c_out = c_in, c_out
        k_size, pad, _ = _transposed_conv_geometry(r)
        weight = conv.weight.detach()
        if r == 1:  # plain conv (C_out, C_in, 3), zero padding 1: tap s uses kernel index s + 1
            taps_of = lambda j: [s for s in (-1, 0, 1)]  # noqa: E731
            tap_weight = lambda j, s: weight[:, :, s + pad].T  # noqa: E731
        else:  # transposed conv (C_in, C_out, 2r): output n r + j gets x[n + s] W[:, :, j + p - s r]
            taps_of = lambda j: [s for s in range(-2, 3) if 0 <= j + pad - s * r < k_size]  # noqa: E731
            tap_weight = lambda j, s: weight[:, :, j + pad - s * r]  # noqa: E731
        all_taps = sorted({s for j in range(r) for s in taps_of(j)})
        self.shifts = all_taps
        self.s_min, self.s_max = all_taps[0], all_taps[-1]
        # Phase j: its taps are a contiguous run of im2col column blocks.
        self.phase_columns: list[tuple[int, int]] = []
        for j in range(r):
            taps = taps_of(j)
            if taps != list(range(taps[0], taps[-1] + 1)):
                raise AssertionError(f"non-contiguous taps {taps} for phase {j}")
            self.phase_columns.append(((taps[0] - self.s_min) * c_in, (taps[-1] - self.s_min + 1) * c_in))
            _register_weight(self, f"phase_weight{j}", torch.cat([tap_weight(j, s) for s in taps], 0).contiguous())
        _register_weight(self, "up_bias", conv.bias.detach().clone())

        self.dilations = []
        for i, unit in enumerate(stage.residuals):
            d = unit.dilated.dilation[0]
            if unit.dilated.kernel_size[0] != 3:
                raise ValueError("the fast MelGAN path supports residual kernel size 3 only")
            self.dilations.append(d)
            wd = unit.dilated.weight.detach()  # (C, C, 3)
            _register_weight(self, f"dilated_weight{i}", torch.cat([wd[:, :, k].T for k in range(3)], 0).contiguous())
            _register_weight(self, f"dilated_bias{i}", unit.dilated.bias.detach().clone())
            wp, ws = unit.pointwise.weight.detach()[:, :, 0], unit.shortcut.weight.detach()[:, :, 0]
            _register_weight(self, f"mix_weight{i}", torch.cat([wp.T, ws.T], 0).contiguous())  # [lrelu(u), x] -> y
            _register_weight(self, f"mix_bias{i}", (unit.pointwise.bias + unit.shortcut.bias).detach().clone())
        self.halo = sum(self.dilations)  # output samples of context the residual stack needs each side
        # Output rows per tile: the tile's buffers (about 6 C floats per row) should fit in L2.
        rows = max(tile_bytes // (4 * 6 * c_out), 64)
        self.tile_in = max(rows // r, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: (L, C_in)`` time-major -> ``(L * r, C_out)``."""
        n_in = x.shape[0]
        r, c = self.factor, self.c_out
        n_out = n_in * r
        out = x.new_empty(n_out, c)
        halo_in = math.ceil(self.halo / r)
        for n0 in range(0, n_in, self.tile_in):
            n1 = min(n0 + self.tile_in, n_in)
            na, nb = max(n0 - halo_in, 0), min(n1 + halo_in, n_in)
            buf = self._upsample(x, na, nb)  # (Y rows [na r, nb r), 2 C_out), Y in the second half
            ya, yb = max(n0 * r - self.halo, 0), min(n1 * r + self.halo, n_out)
            buf = buf[ya - na * r : yb - na * r]
            ca, cb = ya, yb
            last = len(self.dilations) - 1
            for i, d in enumerate(self.dilations):
                # the last unit writes its rows [n0 r, n1 r) straight into the stage output
                dest = (out[n0 * r : n1 * r], n0 * r) if i == last else None
                buf, ca, cb = self._residual_unit(i, d, buf, ca, cb, n_out, dest)
        return out

    def _upsample(self, x: torch.Tensor, na: int, nb: int) -> torch.Tensor:
        """Rows ``[na r, nb r)`` of the transposed conv of ``lrelu(x)``, written into the second half of a ``(rows, 2C)`` buffer."""
        r, c, m = self.factor, self.c_out, nb - na
        cols = x.new_empty(m, len(self.shifts) * self.c_in)
        _fill_taps(cols, x, na, self.shifts, self.slope, mode="zeros")
        z = x.new_empty(m * r, 2 * c)
        phases = z.view(m, r, 2 * c)
        for j, (c0, c1) in enumerate(self.phase_columns):
            # rows n r + j of the x half: a (m, C) view with row stride r * 2C
            torch.addmm(self.up_bias, cols[:, c0:c1], getattr(self, f"phase_weight{j}"), out=phases[:, j, c:])
        return z

    def _residual_unit(self, i: int, d: int, buf: torch.Tensor, ca: int, cb: int, total: int, dest=None):
        """``buf: (rows, 2C)`` holds the unit input ``x`` (global rows ``[ca, cb)``) in its second half.

        Returns a buffer holding the unit output in its second half, rows ``[ca', cb')``: ``d`` rows of
        halo are consumed on each side, except at the signal's ends, where reflection padding applies.
        The free first half of the input buffer receives ``lrelu(u)``, so ``[lrelu(u), x]`` is one matrix.
        With ``dest = (tensor, first_row)``, output rows ``[first_row, first_row + len(tensor))`` are written
        into ``tensor`` instead (and only those are computed).
        """
        c = self.c_out
        x = buf[:, c:]
        n = cb - ca
        left = d if ca > 0 else 0
        right = d if cb < total else 0
        m = n - left - right
        cols = buf.new_empty(m, 3 * c)
        _fill_taps(cols, x, left, [-d, 0, d], self.slope, mode="reflect")  # [h(t-d), h(t), h(t+d)], h = lrelu(x)
        z = buf[left : left + m]  # (m, 2C): [u, x]
        u = z[:, :c]
        torch.addmm(getattr(self, f"dilated_bias{i}"), cols, getattr(self, f"dilated_weight{i}"), out=u)
        torch.nn.functional.leaky_relu_(u, self.slope)
        ca, cb = ca + left, cb - right
        if dest is not None:
            target, first = dest
            rows = z[first - ca : first - ca + target.shape[0]]
            torch.addmm(getattr(self, f"mix_bias{i}"), rows, getattr(self, f"mix_weight{i}"), out=target)
            return None, ca, cb
        nxt = buf.new_empty(m, 2 * c)
        torch.addmm(getattr(self, f"mix_bias{i}"), z, getattr(self, f"mix_weight{i}"), out=nxt[:, c:])
        return nxt, ca, cb


class FastMelGANGenerator(nn.Module):
    """Inference-only MelGAN generator: ``cond (B, C, F)`` -> ``(B, 1, F * hop)``, equal to the source model's output.

    Build it with :func:`prepare_for_inference` (or ``generator.fast_inference()``).

    ``workers``: the input is cut into this many time chunks (each with ``receptive_field_frames`` of
    context on both sides, computed and dropped, so the result does not change), run concurrently on
    Python threads while every op runs single-threaded. One coarse split instead of a thread barrier
    inside every small GEMM is faster on an idle machine and far faster on a busy one. ``None`` uses
    ``torch.get_num_threads()``. While a call with more than one worker runs, torch's intra-op thread
    count is set to 1 (it is process-wide) and restored afterwards.
    ``tile_bytes``: working-set size of a time tile within a stage (default 1 MiB, one L2 cache).
    ``onednn_stages``: how many leading upsampling stages run as ordinary (weight-norm-folded) oneDNN
    convolutions in ``(1, C, T)`` layout before switching to the time-major GEMM path; ``None`` picks
    the stages with at least :data:`ONEDNN_MIN_CHANNELS` output channels (2 for the paper generator).
    """

    def __init__(
        self,
        generator: MelGANGenerator,
        tile_bytes: int = 1 << 20,
        workers: int | None = None,
        min_chunk_frames: int = 32,
        onednn_stages: int | None = None,
    ):
        super().__init__()
        # Read effective weights (weight norm, if still present, is evaluated by ``.weight``). No deepcopy:
        # parametrized modules share a generated class, and removing weight norm on a copy breaks the original.
        config = generator.config
        if config.upsampling != "transposed":
            raise ValueError(f"the fast inference path implements transposed-conv upsampling only, not {config.upsampling!r}")
        if config.output != "waveform":
            raise ValueError(f"the fast inference path implements the waveform head only, not {config.output!r}")
        self.config = config
        self.hop_length = config.hop_length
        self.slope = config.leaky_relu_slope
        self.min_frames = generator.min_frames
        self.context_frames = generator.receptive_field_frames
        self.input_pad = generator.input_pad
        self.output_pad = generator.output_pad
        self.workers = workers
        self.min_chunk_frames = max(min_chunk_frames, self.min_frames)
        with torch.no_grad():
            _register_weight(self, "input_weight", generator.input_conv.weight.detach().clone())
            _register_weight(self, "input_bias", generator.input_conv.bias.detach().clone())
            n_stages = len(generator.stages)
            if onednn_stages is None:  # measured: oneDNN wins while C_out >= 128, time-major GEMMs below
                widths = [stage.upsample.out_channels for stage in generator.stages]
                onednn_stages = next((i for i, w in enumerate(widths) if w < ONEDNN_MIN_CHANNELS), n_stages)
            if not 0 <= onednn_stages <= n_stages:
                raise ValueError(f"onednn_stages must be in [0, {n_stages}], got {onednn_stages}")
            self.onednn_stages = nn.ModuleList(_folded_stages(generator)[:onednn_stages])
            self.stages = nn.ModuleList(
                _FastUpsampleStage(s, self.slope, tile_bytes) for s in generator.stages[onednn_stages:]
            )
            w = generator.output_conv.weight.detach()  # (1, C, k)
            _register_weight(self, "output_weight", w[0].contiguous())  # (C, k)
            _register_weight(self, "output_bias", generator.output_conv.bias.detach().clone())

    def chunks(self, n_frames: int, workers: int) -> list[tuple[int, int]]:
        """Frame ranges ``[a, b)`` covering ``[0, n_frames)``: ``workers`` of them, or fewer for short inputs."""
        n = max(1, min(workers, n_frames // self.min_chunk_frames))
        bounds = [round(i * n_frames / n) for i in range(n + 1)]
        return list(zip(bounds[:-1], bounds[1:]))

    @torch.inference_mode()
    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        c = self.config
        if cond.dim() != 3 or cond.shape[1] != c.cond_channels:
            raise ValueError(f"expected cond of shape (B, {c.cond_channels}, F), got {tuple(cond.shape)}")
        n_batch, _, n_frames = cond.shape
        if n_frames < self.min_frames:
            raise ValueError(f"need at least {self.min_frames} conditioning frames (reflection padding), got {n_frames}")
        cond = cond.to(self.input_weight.dtype)
        hop = self.hop_length
        out = cond.new_empty(n_batch, 1, n_frames * hop)
        workers = self.workers or torch.get_num_threads()
        if cond.device.type != "cpu":  # worker threads are a CPU scheduling device; elsewhere one pass
            workers = 1
        tasks = [(b, a, e) for b in range(n_batch) for a, e in self.chunks(n_frames, workers)]

        def run(task):
            b, a, e = task
            with torch.inference_mode():  # grad mode is thread-local: enter it in the worker too
                out[b, 0, a * hop : e * hop] = self._chunk(cond[b], a, e)

        if workers <= 1 or len(tasks) == 1:
            for task in tasks:
                run(task)
            return out
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with ThreadPoolExecutor(min(workers, len(tasks))) as pool:
                list(pool.map(run, tasks))
        finally:
            torch.set_num_threads(threads)
        return out

    def _chunk(self, cond: torch.Tensor, a: int, e: int) -> torch.Tensor:
        """Audio for frames ``[a, e)`` of ``cond (C, F)``, computed with context frames on both sides: ``((e - a) hop,)``."""
        n_frames = cond.shape[-1]
        lo, hi = max(a - self.context_frames, 0), min(e + self.context_frames, n_frames)
        piece = F.pad(cond[None, :, lo:hi], (self.input_pad, self.input_pad), mode="reflect")
        h = F.conv1d(piece, self.input_weight, self.input_bias)  # (1, C0, frames)
        for stage in self.onednn_stages:
            h = stage(h)  # (1, C_i, T_i), oneDNN convolutions
        x = h[0].T.contiguous()  # (T_i, C_i) time-major
        for stage in self.stages:
            x = stage(x)  # (T_i, C_i)
        audio = self._output(x)  # ((hi - lo) hop,)
        return audio[(a - lo) * self.hop_length : (e - lo) * self.hop_length]

    def _output(self, x: torch.Tensor) -> torch.Tensor:
        """LeakyReLU, reflection-padded width-k conv to one channel, tanh: ``(T, C)`` -> ``(T,)``."""
        n, ch = x.shape
        p = self.output_pad
        k = 2 * p + 1
        hp = x.new_empty(n + 2 * p, ch)
        _fill_taps(hp, x, -p, [0], self.slope, mode="reflect")
        # One GEMM gives every tap's contribution, taps[t, j] = hp[t] . w[:, j]; then
        # y[t] = b + sum_j taps[t + j, j], a sum along a strided diagonal view (flat index (t + j) k + j).
        taps = torch.mm(hp, self.output_weight)  # (n + 2p, k)
        y = taps.as_strided((n, k), (k, k + 1)).sum(1)
        return torch.tanh_(y.add_(self.output_bias))


def _folded_stages(generator: MelGANGenerator) -> list[nn.Module]:
    """Fresh copies of ``generator.stages`` with weight norm folded into plain frozen weights."""
    folded = MelGANGenerator(generator.config).remove_weight_norm()
    effective = {}
    for name, module in generator.named_modules():
        if isinstance(module, (nn.Conv1d, nn.ConvTranspose1d)):
            effective[f"{name}.weight"] = module.weight.detach().clone()  # evaluates weight norm if present
            effective[f"{name}.bias"] = module.bias.detach().clone()
    folded.load_state_dict(effective)
    folded.requires_grad_(False)
    return list(folded.eval().stages)


def prepare_for_inference(
    generator: MelGANGenerator,
    tile_bytes: int = 1 << 20,
    workers: int | None = None,
    min_chunk_frames: int = 32,
    onednn_stages: int | None = None,
) -> FastMelGANGenerator:
    """A :class:`FastMelGANGenerator` built from ``generator``'s current weights (``generator`` is left unchanged)."""
    return FastMelGANGenerator(
        generator, tile_bytes=tile_bytes, workers=workers, min_chunk_frames=min_chunk_frames, onednn_stages=onednn_stages
    ).eval()
