"""Fused WaveNet generation loop (numba).

Why numba and not a C++ extension: numba is already a dependency (via librosa), needs no compiler
on the user's machine, compiles this loop in seconds at first use and caches the machine code
next to this file (``cache=True``); a ``load_inline`` extension would need gcc plus the PyTorch
headers and a minute of compilation on every clean CI machine. If numba cannot be imported,
:func:`available` is False and :meth:`WaveNet.generate` uses the PyTorch reference loop.

Why a fused loop at all: one generated sample of wavenet-small is ~1.2 MFLOP spread over ~150
small matrix-vector products and activations. PyTorch eager costs microseconds per operator,
so the reference :meth:`WaveNet.step` loop is bound by dispatch overhead (a few hundred samples
per second). Here a whole block of samples runs in one compiled call: per layer, the dilated
convolution is an ``axpy``-form product over the input channels (weights stored input-major so
the innermost loop runs over contiguous output channels and vectorises), the gate uses a rational
``tanh`` (max abs error 3.4e-7, vectorisable, unlike libm calls), and each layer's past inputs live
in a ring buffer (Fast WaveNet's queues). Batches are split across threads (``nogil``).

The state layout is ``queue: (sum of queue lengths, B, R)``: layer ``l`` owns rows
``offset[l] .. offset[l] + length[l]`` and row ``offset[l] + (t % length[l])`` holds its input at
time ``t - length[l]`` until step ``t`` overwrites it.
"""

from __future__ import annotations

import math
import os
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

try:
    import numba

    _IMPORT_ERROR: str | None = None
except Exception as e:  # pragma: no cover - depends on the environment
    numba = None
    _IMPORT_ERROR = f"numba could not be imported ({type(e).__name__}: {e})"

from waveforge.kernels import primitives as _prim
from waveforge.utils.progress import progress as progress_bar

try:  # to keep the BLAS that numba calls (scipy's OpenBLAS) single-threaded; we thread over the batch
    import scipy.linalg.cython_blas  # noqa: F401  (load it now, so that threadpoolctl can see it)
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover
    threadpool_limits = None

BLOCK = 2048  # samples per compiled call: bounds the precomputed conditioning block (N, L, B, G)


def available() -> bool:
    return numba is not None


def unavailable_reason() -> str:
    return _IMPORT_ERROR or ""


# ---------------------------------------------------------------------------- packed weights
@dataclass
class PackedWaveNet:
    """Weights as contiguous float32 numpy arrays, input-major (``(in, out)``) for the kernel."""

    is_mulaw: bool
    embedding: np.ndarray  # (V, R)      mu-law input; (1, R) unused for logistic
    w_in: np.ndarray  # (R,)            logistic input 1x1 conv
    b_in: np.ndarray  # (R,)
    w_dilated: np.ndarray  # (L, K*R, G)  taps oldest first
    b_dilated: np.ndarray  # (L, G)
    w_out: np.ndarray  # (L, G/2, R+S)   residual and skip 1x1 convs fused
    b_out: np.ndarray  # (L, R+S)
    w_head1: np.ndarray  # (S, S)
    b_head1: np.ndarray  # (S,)
    w_head2: np.ndarray  # (S, O)
    b_head2: np.ndarray  # (O,)
    dilations: np.ndarray  # (L,) int64
    queue_lengths: np.ndarray  # (L,) int64, (K-1) * dilation
    queue_offsets: np.ndarray  # (L,) int64
    kernel_size: int
    n_mixtures: int


def pack(model) -> PackedWaveNet:
    c = model.config

    def f32(t: torch.Tensor) -> np.ndarray:
        return np.ascontiguousarray(t.detach().to("cpu", torch.float32).numpy())

    blocks = list(model.blocks)
    k = c.kernel_size
    # Conv1d weight (G, R, K) -> (K, R, G) -> (K*R, G): row j*R + i is tap j, input channel i
    w_dilated = np.stack([f32(b.dilated.weight.permute(2, 1, 0).reshape(k * c.residual_channels, c.gate_channels)) for b in blocks])
    lengths = np.array([(k - 1) * d for d in c.dilations], dtype=np.int64)
    if c.output == "mulaw":
        embedding, w_in, b_in = f32(model.input_embedding.weight), np.zeros(c.residual_channels, np.float32), np.zeros(c.residual_channels, np.float32)
    else:
        embedding = np.zeros((1, c.residual_channels), np.float32)
        w_in, b_in = f32(model.input_conv.weight[:, 0, 0]), f32(model.input_conv.bias)
    return PackedWaveNet(
        is_mulaw=c.output == "mulaw",
        embedding=embedding,
        w_in=w_in,
        b_in=b_in,
        w_dilated=w_dilated,
        b_dilated=np.stack([f32(b.dilated.bias) for b in blocks]),
        w_out=np.stack([f32(b.out.weight[:, :, 0].t()) for b in blocks]),
        b_out=np.stack([f32(b.out.bias) for b in blocks]),
        w_head1=f32(model.head_hidden.weight[:, :, 0].t()),
        b_head1=f32(model.head_hidden.bias),
        w_head2=f32(model.head_out.weight[:, :, 0].t()),
        b_head2=f32(model.head_out.bias),
        dilations=np.array(c.dilations, dtype=np.int64),
        queue_lengths=lengths,
        queue_offsets=np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64),
        kernel_size=k,
        n_mixtures=c.n_mixtures,
    )


# ---------------------------------------------------------------------------- the kernel
if numba is not None:
    # no 'nnan'/'ninf': the samplers compare against masked classes
    _FASTMATH = {"contract", "reassoc", "arcp", "nsz", "afn"}
    _ONE = np.float32(1.0)
    _HALF = np.float32(0.5)
    _TANH_CLAMP = np.float32(7.90531110763549805)
    # rational minimax approximation tanh(x) = x P(x^2) / Q(x^2) on [-7.9, 7.9]; |error| <= 3.4e-7
    _A1, _A3, _A5, _A7 = np.float32(4.89352455891786e-03), np.float32(6.37261928875436e-04), np.float32(1.48572235717979e-05), np.float32(5.12229709037114e-08)
    _A9, _A11, _A13 = np.float32(-8.60467152213735e-11), np.float32(2.00018790482477e-13), np.float32(-2.76076847742355e-16)
    _B0, _B2, _B4, _B6 = np.float32(4.89352518554385e-03), np.float32(2.26843463243900e-03), np.float32(1.18534705686654e-04), np.float32(1.19825839466702e-06)

    @numba.njit(inline="always", fastmath=_FASTMATH, error_model="numpy")
    def _tanh(x):
        x = min(max(x, -_TANH_CLAMP), _TANH_CLAMP)
        x2 = x * x
        p = ((((((_A13 * x2 + _A11) * x2 + _A9) * x2 + _A7) * x2 + _A5) * x2 + _A3) * x2 + _A1) * x
        q = ((_B6 * x2 + _B4) * x2 + _B2) * x2 + _B0
        return p / q

    @numba.njit(nogil=True, inline="always")
    def _matmul(x, w, out):
        """``out = x @ w``; a single row goes through BLAS gemv (gemm with one row would pack all of ``w``)."""
        if x.shape[0] == 1:
            np.dot(x[0], w, out[0])
        else:
            np.dot(x, w, out)

    @numba.njit(nogil=True, inline="always")
    def _product(gemm, x, w, packed_w, out):
        """``out = x @ w``: through MKL's packed GEMM when ``gemm`` is the address of
        ``cblas_sgemm_compute`` (``packed_w`` is then ``w`` packed for ``len(x)`` rows), else BLAS."""
        if gemm != 0:
            _prim.sgemm_packed(gemm, x.shape[0], out.shape[1], x.shape[1], x, packed_w, out)
        else:
            _matmul(x, w, out)

    _LOG2E = np.float32(1.4426950408889634)
    _LN2_HI = np.float32(0.693145751953125)  # ln 2 with its last 12 mantissa bits zero: n * _LN2_HI is exact
    _LN2_LO = np.float32(1.4286068203094172e-06)  # ln 2 - _LN2_HI
    _EXP_MIN = np.float32(-87.33)  # just above ln(2^-126): 2^n stays a normal float

    @numba.njit(inline="always", fastmath=_FASTMATH, error_model="numpy")
    def _exp_nonpositive(x):
        """``exp(x)`` for ``x <= 0`` in float32, vectorisable (libm's ``exp`` is a call per element):
        ``2^n e^g`` with ``n = round(x log2 e)``, ``|g| <= ln2 / 2``, ``e^g`` by its degree-7 Taylor
        polynomial (truncation error <= 6e-9, below float32 rounding) and ``2^n`` built from its bits.
        Below ``2^-126`` (``x < -87.3``) it returns ``2^-126``: a class that unlikely is never drawn."""
        x = max(x, _EXP_MIN)
        n = math.floor(x * _LOG2E + _HALF)
        g = (x - n * _LN2_HI) - n * _LN2_LO  # Cody-Waite: n ln2 in two parts, so g keeps float32 accuracy
        p = _ONE + g * (_ONE + g * np.float32(1 / 2) * (_ONE + g * np.float32(1 / 3) * (_ONE + g * np.float32(1 / 4) * (
            _ONE + g * np.float32(1 / 5) * (_ONE + g * np.float32(1 / 6) * (_ONE + g * np.float32(1 / 7)))))))
        return p * _prim.int_bits_to_float((np.int32(n) + np.int32(127)) << np.int32(23))

    @numba.njit(nogil=True, cache=True, fastmath=_FASTMATH, error_model="numpy")
    def _pick(weights, n, u, temperature, top_p, order_buf):
        """Index drawn from unnormalised logits ``weights[:n]`` with uniform ``u``; temperature, top-p.

        Inverse-CDF sampling of ``softmax(weights / temperature)`` (restricted to the smallest set of
        most likely classes whose mass reaches ``top_p``); ``order_buf`` (at least ``n`` floats) is scratch."""
        best = 0
        for k in range(1, n):
            if weights[k] > weights[best]:
                best = k
        if temperature <= 0.0:
            return best
        m = weights[best]
        inv_t = 1.0 / temperature
        total = np.float32(0.0)
        for k in range(n):
            e = _exp_nonpositive(np.float32((weights[k] - m) * inv_t))
            order_buf[k] = e
            total += e
        probs = order_buf
        if top_p < 1.0:
            probs = order_buf[:n].copy()
            order = np.argsort(-probs)
            mass = 0.0
            for r in range(n):
                k = order[r]
                if mass >= top_p * total:
                    probs[k] = 0.0
                else:
                    mass += order_buf[k]
            total = mass
        target = u * total
        acc = 0.0
        last = best
        for k in range(n):
            if probs[k] > 0.0:
                acc += probs[k]
                last = k
                if acc > target:
                    return k
        return last

    @numba.njit(inline="always", fastmath=_FASTMATH, error_model="numpy")
    def _gate(h, bias, cond, z):
        """``z = tanh(a_f) * sigmoid(a_g)`` for ``a = h + bias + cond`` split ``[f | g]`` along channels,
        with ``sigmoid(a) = (1 + tanh(a/2)) / 2``; ``h, cond: (B, G)``, ``z: (B, G/2)``.

        Whole C-contiguous 2-D blocks, not per-row slices: numba types a slice's layout as unknown,
        and that loop did not vectorise (10x slower: 150 us against 15 us per wavenet-small step of 16 rows)."""
        n_half = z.shape[1]
        for b in range(h.shape[0]):
            for c in range(n_half):
                a_f = h[b, c] + bias[c] + cond[b, c]
                a_g = h[b, n_half + c] + bias[n_half + c] + cond[b, n_half + c]
                z[b, c] = _tanh(a_f) * (_HALF + _HALF * _tanh(_HALF * a_g))

    # error_model="numpy": no zero-division checks, which would stop the loops from vectorising
    @numba.njit(nogil=True, cache=True, fastmath=_FASTMATH, error_model="numpy")
    def _run(
        n_steps, t0, teacher, inputs_cls, inputs_f, first_cls, first_f,
        is_mulaw, embedding, w_in, b_in, w_dil, b_dil, w_out, b_out, w_h1, b_h1, w_h2, b_h2,
        dilations, q_len, q_off, kernel_size, queue,
        gemm, p_dil, p_out, p_h1, p_h2,
        cond_terms, cond_per_step,
        uniforms, temperature, top_p, n_mix,
        out_logits, out_cls, out_f,
    ):
        n_layers, _, n_gate = w_dil.shape
        n_res = embedding.shape[1]
        n_half = n_gate // 2
        n_rs = w_out.shape[2]
        n_skip = n_rs - n_res
        n_out = w_h2.shape[1]
        batch = queue.shape[1]
        x = np.empty((batch, n_res), np.float32)
        xin = np.empty((batch, kernel_size * n_res), np.float32)
        h = np.empty((batch, n_gate), np.float32)
        z = np.empty((batch, n_half), np.float32)
        o = np.empty((batch, n_rs), np.float32)
        skip = np.empty((batch, n_skip), np.float32)
        hid = np.empty((batch, n_skip), np.float32)
        y = np.empty((batch, n_out), np.float32)
        buf = np.empty(max(n_out, 1), np.float32)
        pick_buf = np.empty(max(n_out, 1), np.float32)
        cur_cls = first_cls.copy()
        cur_f = first_f.copy()
        for n in range(n_steps):
            t = t0 + n
            if teacher:
                for b in range(batch):
                    cur_cls[b] = inputs_cls[n, b]
                    cur_f[b] = inputs_f[n, b]
            # input embedding
            for b in range(batch):
                if is_mulaw:
                    for i in range(n_res):
                        x[b, i] = embedding[cur_cls[b], i]
                else:
                    for i in range(n_res):
                        x[b, i] = w_in[i] * cur_f[b] + b_in[i]
                for i in range(n_skip):
                    skip[b, i] = 0.0
            ct = n if cond_per_step else 0
            for l in range(n_layers):
                # h = W [x_{t-(K-1)d} .. x_{t-d}, x_t] + b + V c: the dilated causal conv as one GEMM
                length = q_len[l]
                for j in range(kernel_size - 1):
                    row = q_off[l] + (t - (kernel_size - 1 - j) * dilations[l]) % length
                    for b in range(batch):
                        for i in range(n_res):
                            xin[b, j * n_res + i] = queue[row, b, i]
                for b in range(batch):
                    for i in range(n_res):
                        xin[b, (kernel_size - 1) * n_res + i] = x[b, i]
                if length > 0:
                    row = q_off[l] + t % length
                    for b in range(batch):
                        for i in range(n_res):
                            queue[row, b, i] = x[b, i]
                _product(gemm, xin, w_dil[l], p_dil[l], h)
                # z = tanh(h_f) * sigmoid(h_g), sigmoid(a) = (1 + tanh(a/2)) / 2
                _gate(h, b_dil[l], cond_terms[ct, l], z)
                # [residual | skip] = W_o z + b_o
                _product(gemm, z, w_out[l], p_out[l], o)
                for b in range(batch):
                    for i in range(n_res):
                        x[b, i] += o[b, i] + b_out[l, i]
                    for i in range(n_skip):
                        skip[b, i] += o[b, n_res + i] + b_out[l, n_res + i]
            # head: W2 relu(W1 relu(skip) + b1) + b2
            for b in range(batch):
                for k in range(n_skip):
                    skip[b, k] = max(skip[b, k], np.float32(0.0))
            _product(gemm, skip, w_h1, p_h1, hid)
            for b in range(batch):
                for k in range(n_skip):
                    hid[b, k] = max(hid[b, k] + b_h1[k], np.float32(0.0))
            _product(gemm, hid, w_h2, p_h2, y)
            for b in range(batch):
                for k in range(n_out):
                    y[b, k] += b_h2[k]
            if teacher:
                for b in range(batch):
                    for k in range(n_out):
                        out_logits[n, b, k] = y[b, k]
                continue
            for b in range(batch):
                if is_mulaw:
                    for k in range(n_out):
                        buf[k] = y[b, k]
                    cur_cls[b] = _pick(buf, n_out, uniforms[n, b, 0], temperature, top_p, pick_buf)
                    out_cls[n, b] = cur_cls[b]
                else:
                    for k in range(n_mix):
                        buf[k] = y[b, k]
                    k = _pick(buf, n_mix, uniforms[n, b, 0], temperature, top_p, pick_buf)
                    mu = y[b, n_mix + k]
                    if temperature <= 0.0:
                        value = mu
                    else:
                        log_s = max(y[b, 2 * n_mix + k], np.float32(-7.0))
                        u = min(max(uniforms[n, b, 1], 1e-5), 1.0 - 1e-5)
                        value = mu + math.exp(log_s) * temperature * (math.log(u) - math.log(1.0 - u))
                    cur_f[b] = min(max(value, -1.0), 1.0)
                    out_f[n, b] = cur_f[b]
        return 0


# ---------------------------------------------------------------------------- drivers
class _MKLPacked:
    """The weight matrices in MKL's packed form for ``rows``-row products (``gemm`` is the address of
    ``cblas_sgemm_compute``), or placeholders and ``gemm == 0`` when MKL is not used.

    Why packed: for a few rows, BLAS's sgemm re-packs the whole weight matrix on every call; MKL's
    packed GEMM packs it once, which is what brings a batch near the GEMM peak."""

    _NONE = np.zeros((1, 1), np.float32)

    def __init__(self, packed: PackedWaveNet, rows: int, mkl: "_prim.MKL | None"):
        self.mkl = mkl if rows > 1 else None
        self.rows = rows
        self.gemm = self.mkl.compute if self.mkl is not None else 0
        if self.mkl is None:
            none = self._NONE
            self.dilated, self.out, self.head1, self.head2 = none, none, none[0], none[0]
            return
        previous = self.mkl.sequential()  # MKL packs and computes with the same thread count
        try:
            self.dilated = self._pack_layers(packed.w_dilated)
            self.out = self._pack_layers(packed.w_out)
            self.head1 = self._pack_layers(packed.w_head1[None])[0]
            self.head2 = self._pack_layers(packed.w_head2[None])[0]
        finally:
            self.mkl.restore(previous)

    def _pack_layers(self, weights: np.ndarray) -> np.ndarray:
        """``(L, K, N)`` input-major weights -> ``(L, P)``, each packed in place (the packed form depends on its address)."""
        n_layers, k, n = weights.shape
        out = np.empty((n_layers, self.mkl.packed_size(k, n, self.rows)), np.float32)
        for w, row in zip(weights, out):
            self.mkl.pack(w, self.rows, row)
        return out


# model -> (key, PackedWaveNet, {(rows, MKL used): _MKLPacked}): generate() calls in a row reuse the layouts.
# MKL's packed buffers are mostly padding, and faulting their pages in again on every call is
# wasted work. The key (primitives.parameter_key) changes with any in-place parameter update.
_PACK_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _packed(model, rows_per_stream: list[int], use_mkl: bool) -> tuple[PackedWaveNet, dict[int, _MKLPacked]]:
    key = _prim.parameter_key(model)
    cached = _PACK_CACHE.get(model)
    if cached is None or cached[0] != key:
        _PACK_CACHE.pop(model, None)
        cached = (key, pack(model), {})
        _PACK_CACHE[model] = cached
    _, dense, by_rows = cached
    mkl = _prim.mkl() if use_mkl else None
    layouts = {}
    for rows in rows_per_stream:
        slot = (rows, mkl is not None)
        if slot not in by_rows:
            by_rows[slot] = _MKLPacked(dense, rows, mkl)
        layouts[rows] = by_rows[slot]
    return dense, layouts


def _cond_terms(model, cond_up: torch.Tensor | None, global_terms, lo: int, hi: int, batch: int) -> tuple[np.ndarray, bool]:
    """Per-step conditioning added to every gate: ``(N, L, B, G)`` (or ``(1, L, B, G)`` when constant)."""
    c = model.config
    n_layers, gate = c.layers, c.gate_channels
    if cond_up is None:
        terms = torch.zeros(1, n_layers, batch, gate)
        if global_terms is not None:
            terms[0] = torch.stack(global_terms)  # (L, B, G)
        return terms.numpy(), False
    weight = torch.cat([p.weight[:, :, 0] for p in model.cond_projections])  # (L*G, up)
    block = torch.einsum("kc,bcn->nbk", weight, cond_up[:, :, lo:hi])  # (N, B, L*G)
    block = block.reshape(hi - lo, batch, n_layers, gate).transpose(1, 2)  # (N, L, B, G)
    if global_terms is not None:
        block = block + torch.stack(global_terms)[None]
    return np.ascontiguousarray(block.float().numpy()), True


def _threads_for(batch: int) -> int:
    return max(1, min(batch, torch.get_num_threads(), os.cpu_count() or 1))


def _drive(model, n_steps, teacher_inputs, cond, global_id, temperature, top_p, batch, progress, generator):
    """Run the kernel over ``n_steps`` in blocks; returns logits ``(B, O, N)`` (teacher) or samples ``(B, N)``."""

    c = model.config
    splits = np.array_split(np.arange(batch), _threads_for(batch))
    packed, mkl_packed = _packed(model, [len(s) for s in splits], use_mkl=batch > 1)
    with torch.no_grad():
        cond_up = model._upsample(cond, n_steps, batch) if (cond is not None or model.upsampler is not None) else None
        global_terms = model._global_terms(global_id, batch)
    teacher = teacher_inputs is not None
    # one queue per thread's share of the batch: (sum of queue lengths, rows, R)
    queues = [np.zeros((max(int(packed.queue_lengths.sum()), 1), len(s), c.residual_channels), np.float32) for s in splits]
    weights = [mkl_packed[len(s)] for s in splits]
    n_out = c.out_channels
    logits = np.zeros((n_steps if teacher else 1, batch, n_out), np.float32)
    out_cls = np.zeros((n_steps, batch), np.int64)
    out_f = np.zeros((n_steps, batch), np.float32)
    silence = model.silence.item()
    prev_cls = np.full(batch, int(silence) if packed.is_mulaw else 0, np.int64)
    prev_f = np.full(batch, float(silence) if not packed.is_mulaw else 0.0, np.float32)
    if teacher:
        flat = teacher_inputs if teacher_inputs.dim() == 2 else teacher_inputs[:, 0]
        flat = flat.t().contiguous()  # (N, B)
        in_cls = flat.numpy().astype(np.int64) if packed.is_mulaw else np.zeros((n_steps, batch), np.int64)
        in_f = flat.numpy().astype(np.float32) if not packed.is_mulaw else np.zeros((n_steps, batch), np.float32)
    pool = ThreadPoolExecutor(len(splits)) if len(splits) > 1 else None
    # A multi-threaded BLAS inside every small product spins and waits on its helper threads:
    # on a busy machine each wait can cost a scheduler tick, thousands of times per second.
    blas_limit = threadpool_limits(limits=1, user_api="blas") if threadpool_limits is not None else None
    try:
        blocks = range(0, n_steps, BLOCK)
        for lo in _progress_blocks(blocks, n_steps, progress):
            hi = min(lo + BLOCK, n_steps)
            with torch.no_grad():
                terms, per_step = _cond_terms(model, cond_up, global_terms, lo, hi, batch)
            if teacher:
                uniforms = np.zeros((1, batch, 2), np.float32)
            else:
                uniforms = torch.rand(hi - lo, batch, 2, generator=generator).numpy()

            def run_stream(queue, w, sl):
                return _run(
                    hi - lo, lo, teacher,
                    in_cls[lo:hi, sl] if teacher else out_cls[:1, sl], in_f[lo:hi, sl] if teacher else out_f[:1, sl],
                    np.ascontiguousarray(prev_cls[sl]), np.ascontiguousarray(prev_f[sl]),
                    packed.is_mulaw, packed.embedding, packed.w_in, packed.b_in, packed.w_dilated, packed.b_dilated,
                    packed.w_out, packed.b_out, packed.w_head1, packed.b_head1, packed.w_head2, packed.b_head2,
                    packed.dilations, packed.queue_lengths, packed.queue_offsets, packed.kernel_size, queue,
                    w.gemm, w.dilated, w.out, w.head1, w.head2,
                    np.ascontiguousarray(terms[:, :, sl]), per_step,
                    np.ascontiguousarray(uniforms[:, sl]), float(temperature), float(top_p), packed.n_mixtures,
                    logits[lo:hi, sl] if teacher else logits[:, sl], out_cls[lo:hi, sl], out_f[lo:hi, sl],
                )

            def work(queue, w, idx):
                sl = slice(idx[0], idx[-1] + 1)
                previous = w.mkl.sequential() if w.mkl is not None else None  # MKL_Set_Num_Threads_Local is per thread
                try:
                    return run_stream(queue, w, sl)
                finally:
                    if w.mkl is not None:
                        w.mkl.restore(previous)

            if pool is None:
                work(queues[0], weights[0], splits[0])
            else:
                list(pool.map(work, queues, weights, splits))
            if not teacher:
                prev_cls[:] = out_cls[hi - 1]
                prev_f[:] = out_f[hi - 1]
    finally:
        if pool is not None:
            pool.shutdown()
        if blas_limit is not None:
            blas_limit.restore_original_limits()
    if teacher:
        return torch.from_numpy(logits).permute(1, 2, 0).contiguous()  # (B, O, N)
    return torch.from_numpy(out_cls.T.copy() if packed.is_mulaw else out_f.T.copy())  # (B, N)


def _progress_blocks(blocks, n_steps, enabled):
    """Yield the block starts, advancing a bar by each block's steps (``n_steps`` in all) when enabled."""
    bar = progress_bar(range(n_steps), desc="wavenet", total=n_steps, unit="sample", enabled=enabled)
    if not enabled:
        yield from blocks
        return
    with bar:
        for lo in blocks:
            yield lo
            bar.update(min(BLOCK, n_steps - lo))


def teacher_forced(model, inputs: torch.Tensor, cond=None, global_id=None) -> torch.Tensor:
    """Run the fused loop feeding ground-truth ``inputs`` (as for ``model.forward``): ``(B, O, T)``.

    Used by the exactness test: it must equal ``model(inputs, cond, global_id)``.
    """
    if not available():
        raise RuntimeError(unavailable_reason())
    batch, n_steps = inputs.shape[0], inputs.shape[-1]
    return _drive(model, n_steps, inputs.cpu(), cond, global_id, 1.0, 1.0, batch, False, None)


def generate(model, n_samples, cond, global_id, temperature, top_p, batch_size, progress, generator) -> torch.Tensor:
    """Fast path of :meth:`WaveNet.generate`: ``(B, 1, n_samples)`` audio."""
    if not available():
        raise RuntimeError(unavailable_reason())
    samples = _drive(model, n_samples, None, cond, global_id, temperature, top_p, batch_size, progress, generator)
    return model.to_audio(samples)
