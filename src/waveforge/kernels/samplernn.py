"""Fused SampleRNN generation loop (numba), the fast path of :meth:`SampleRNN.generate`.

The top tier runs every FS1 samples, the middle tier every FS2 samples, the sample MLP every
sample; GRU gates in PyTorch's order ``(r, z, n)`` with a rational ``tanh``::

    r = sigma(W_ir x + b_ir + W_hr h + b_hr),  z = sigma(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),  h' = (1 - z) * n + z * h

**Threads split every product by output columns**, not the batch: each of ``T`` threads owns a
column block of every weight matrix (for a GRU, a block of units and their three gates, so the
state update needs no other thread's columns), reads only that block, and the threads meet at a
spin barrier (:func:`~waveforge.kernels.primitives.barrier`) before the next product reads the
whole output. So one stream uses every core, and a batch runs one ``(B, K) @ (K, N / T)`` product
per thread with the weights read once per step, not once per thread. Cheap full-width work (the
frame inputs, the MLP's first layer) is done redundantly by every thread instead of meeting.
Sampling is split by stream (thread ``t`` draws streams ``t, t + T, ...``).

**The sample MLP's input layer is a lookup table.** ``mlp_input`` maps the embeddings of the last
FS2 samples to ``mlp_hidden``; as each embedding depends only on a class, it is precomputed per
window position: ``table[i, c] = embedding[c] @ W_in[i E:(i+1) E]`` ``(FS2, 256, mlp_hidden)``, and
each sample adds FS2 rows instead of reading the whole ``(FS2 E, mlp_hidden)`` matrix.

**What bounds it.** One stream reads every weight once per use: per sample ~1/16 of the top tier,
1/4 of the middle tier and the whole MLP, ~30 MB in float32 for the paper model, from a 150 MB
working set that does not stay in cache; memory bandwidth, not arithmetic, sets the speed.
``weights="float16"`` halves those bytes; products still accumulate in float32 (``SampleRNN.generate``
picks it by default where no packed GEMM runs: ``weights="auto"``). A batch of
32 is bound by arithmetic: with PyTorch's MKL available, batched products use MKL's packed GEMM
(:func:`~waveforge.kernels.primitives.mkl`), else ``np.dot`` (OpenBLAS).

Weights are laid out as flat arrays per thread (dense ``(K, N_t)`` float32, float16 bits, or
MKL-packed), once per model and layout: the layout is cached until a parameter changes.
:func:`_product` picks the routine from the array's dtype and ``gemm``.
"""

from __future__ import annotations

import os
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from waveforge.audio.mulaw import mu_law_decode
from waveforge.kernels import primitives as _prim
from waveforge.kernels import wavenet as _wn

available = _wn.available
unavailable_reason = _wn.unavailable_reason

WEIGHT_DTYPES = ("float32", "float16")
_FLOAT16_MAX = 65504.0
_HALF_TILE = 128  # output columns per tile of the batched float16 product: B x 128 accumulators stay in L1

if _wn.numba is not None:
    numba = _wn.numba
    _tanh = _wn._tanh
    _pick = _wn._pick
    _HALF = _wn._HALF
    _FM = _wn._FASTMATH
    half_to_float = _prim.half_to_float
    from numba import types
    from numba.extending import overload

    @numba.njit(nogil=True, fastmath=_FM, error_model="numpy")
    def _matmul_half(x, w_flat, out):
        """``out (B, N) = x (B, K) @ W``, ``W (K, N)`` given as flat float16 bits; float32 accumulation.

        Indexing goes through a 2-D view: with flat ``k * N + n`` indices numba cannot prove them
        non-negative, keeps its wrap-around check, and the loop does not vectorise (10x slower)."""
        batch, n_in = x.shape
        n_out = out.shape[1]
        w = w_flat.reshape((n_in, n_out))
        if batch == 1:  # one stream: stream W once, eight rows per pass over the accumulators
            y = out[0]
            for n in range(n_out):
                y[n] = 0.0
            k = 0
            while k + 8 <= n_in:
                x0, x1, x2, x3 = x[0, k], x[0, k + 1], x[0, k + 2], x[0, k + 3]
                x4, x5, x6, x7 = x[0, k + 4], x[0, k + 5], x[0, k + 6], x[0, k + 7]
                for n in range(n_out):
                    y[n] += (x0 * half_to_float(w[k, n]) + x1 * half_to_float(w[k + 1, n])
                             + x2 * half_to_float(w[k + 2, n]) + x3 * half_to_float(w[k + 3, n])
                             + x4 * half_to_float(w[k + 4, n]) + x5 * half_to_float(w[k + 5, n])
                             + x6 * half_to_float(w[k + 6, n]) + x7 * half_to_float(w[k + 7, n]))
                k += 8
            for k in range(k, n_in):
                xk = x[0, k]
                for n in range(n_out):
                    y[n] += xk * half_to_float(w[k, n])
            return
        # a batch: per column tile, convert 8 rows of W at a time and apply them to every stream
        # (slices, not ``n0 + n`` indices, for the same reason as above)
        rows = np.empty((8, _HALF_TILE), np.float32)
        xs = np.empty(8, np.float32)
        for n0 in range(0, n_out, _HALF_TILE):
            n1 = min(n0 + _HALF_TILE, n_out)
            width = n1 - n0
            out[:, n0:n1] = 0.0
            for k in range(0, n_in, 8):
                depth = min(8, n_in - k)
                for i in range(depth):
                    w_row = w[k + i, n0:n1]
                    for n in range(width):
                        rows[i, n] = half_to_float(w_row[n])
                for i in range(depth, 8):
                    rows[i, :] = 0.0
                for b in range(batch):
                    acc = out[b, n0:n1]
                    for i in range(8):
                        xs[i] = x[b, k + i] if i < depth else np.float32(0.0)
                    x0, x1, x2, x3, x4, x5, x6, x7 = xs[0], xs[1], xs[2], xs[3], xs[4], xs[5], xs[6], xs[7]
                    for n in range(width):
                        acc[n] += (x0 * rows[0, n] + x1 * rows[1, n] + x2 * rows[2, n] + x3 * rows[3, n]
                                   + x4 * rows[4, n] + x5 * rows[5, n] + x6 * rows[6, n] + x7 * rows[7, n])

    def _product(x, w, out, gemm):
        """``out (B, N) = x (B, K) @ W`` with ``W (K, N)`` stored flat in ``w``: float32 (``np.dot``, or
        MKL-packed when ``gemm`` is the address of ``cblas_sgemm_compute``) or float16 bits."""

    @overload(_product)
    def _product_impl(x, w, out, gemm):
        if w.dtype == types.uint16:

            def half(x, w, out, gemm):
                if out.shape[1] > 0:
                    _matmul_half(x, w, out)

            return half

        def single(x, w, out, gemm):
            batch, n_in = x.shape
            n_out = out.shape[1]
            if n_out == 0:
                return
            if gemm != 0:
                _prim.sgemm_packed(gemm, batch, n_out, n_in, x, w, out)
            elif batch == 1:  # BLAS gemv: gemm with one row would pack all of W
                np.dot(x[0], w.reshape((n_in, n_out)), out[0])
            else:
                np.dot(x, w.reshape((n_in, n_out)), out)

        return single

    @numba.njit(inline="always", fastmath=_FM, error_model="numpy")
    def _gru_update(gi, gh, h_old, h_new, n_units):
        """``h_new <- GRU(h_old)`` for ``n_units`` units from ``gi = W_i x + b_i``, ``gh = W_h h + b_h`` (rows ``[r | z | n]``)."""
        for k in range(n_units):
            r = _HALF + _HALF * _tanh(_HALF * (gi[k] + gh[k]))
            z = _HALF + _HALF * _tanh(_HALF * (gi[n_units + k] + gh[n_units + k]))
            n = _tanh(gi[2 * n_units + k] + r * gh[2 * n_units + k])
            h_new[k] = (np.float32(1.0) - z) * n + z * h_old[k]

    @numba.njit(inline="always", fastmath=_FM, error_model="numpy")
    def _folded_input(out, base, bias, frame, fold_w):
        """``out <- base + bias + frame @ fold_w``: one stream's first-layer ``W_ih x`` from a folded tier input."""
        for k in range(out.shape[0]):
            out[k] = base[k] + bias[k]
        for i in range(frame.shape[0]):
            x_i = frame[i]
            w_i = fold_w[i]
            for k in range(out.shape[0]):
                out[k] += x_i * w_i[k]

    @numba.njit(nogil=True, fastmath=_FM, error_model="numpy")
    def _tier(x, h, parity, gru, units, up, up_cols, vec, gi, gh, up_out, gemm, sync, thread, n_threads, epoch, gi_ready):
        """One frame-tier step: GRU stack on ``x (B, H)``, then this thread's columns of the upsampling
        projection into the shared ``vec (B, ...)``. ``h (2, L, B, H)`` is double-buffered: read
        ``h[parity]``, write ``h[1 - parity]``, so no thread overwrites a state another still reads.
        With ``gi_ready``, ``gi`` already holds layer 0's ``W_ih x`` (and ``x`` is not read).
        Returns the barrier epoch."""
        w_ih, w_hh, b_ih, b_hh = gru
        w_up, b_up = up
        n_layers, batch = h.shape[1], h.shape[2]
        u0, u1 = units[thread], units[thread + 1]
        n_units = u1 - u0
        inp = x
        for layer in range(n_layers):
            if layer > 0 or not gi_ready:
                _product(inp, w_ih[layer], gi, gemm)
            _product(h[parity, layer], w_hh[layer], gh, gemm)
            for b in range(batch):
                for k in range(3 * n_units):
                    gi[b, k] += b_ih[layer, k]
                    gh[b, k] += b_hh[layer, k]
                _gru_update(gi[b], gh[b], h[parity, layer, b, u0:u1], h[1 - parity, layer, b, u0:u1], n_units)
            epoch = _prim.barrier(sync, thread, n_threads, epoch)
            inp = h[1 - parity, layer]
        c0 = up_cols[thread]
        _product(inp, w_up, up_out, gemm)
        for b in range(batch):
            for k in range(up_out.shape[1]):
                vec[b, c0 + k] = up_out[b, k] + b_up[k]
        return _prim.barrier(sync, thread, n_threads, epoch)

    @numba.njit(nogil=True, cache=True, fastmath=_FM, error_model="numpy")
    def _run(
        thread, n_threads, sync, gemm, n_steps, teacher, inputs, uniforms, temperature, top_p, cond_frames, has_cond,
        history, h_top, h_mid, top_vec, mid_vec, hidden1, hidden2, logits, out_logits, out_cls,
        dequant, top_in, mid_in, table, top_gru, top_up, mid_gru, mid_up, mlp, top_fold, mid_fold, cols,
    ):
        """One thread's share of ``n_steps`` samples. Shared (written by all threads, each its own
        columns or streams): ``history (B, FS1)``, ``h_top``/``h_mid (2, L, B, H)``, ``top_vec``,
        ``mid_vec``, ``hidden1``/``hidden2 (B, mlp_hidden)``, ``logits (B, 256)``, the outputs.
        ``cols`` holds the column boundaries (``T + 1`` each) of the top units, top upsampling, middle
        units, middle upsampling, MLP hidden and class columns.

        Without a packed GEMM (``gemm == 0``: one stream, or no MKL), the middle tier's first input
        product is folded: its input is ``mid_input(frame) + top_vec[j]``, so ``W_ih`` of layer 0
        is applied to all ``r1`` top vectors at once after each top step (one read of that matrix
        per FS1 samples instead of per FS2), and the frame's part goes through the small
        ``mid_fold = (W_ih mid_input.weight, W_ih mid_input.bias)``. Likewise the top tier of an
        unconditional model, whose input is ``top_input(frame)`` alone: ``top_fold`` replaces its
        layer-0 ``W_ih`` entirely."""
        batch, fs1 = history.shape
        w_top_in, b_top_in = top_in
        w_mid_in, b_mid_in = mid_in
        w1, b1, w2, b2, w3, b3 = mlp
        top_units, top_up_cols, mid_units, mid_up_cols, dim_cols, cls_cols = cols
        n_top, n_mid = h_top.shape[3], h_mid.shape[3]
        fs2, n_cls, dim = table.shape[0], table.shape[1], table.shape[2]
        frame_top = np.empty((batch, fs1), np.float32)
        frame_mid = np.empty((batch, fs2), np.float32)
        x_top = np.empty((batch, n_top), np.float32)
        x_mid = np.empty((batch, n_mid), np.float32)
        n_top_units = top_units[thread + 1] - top_units[thread]
        n_mid_units = mid_units[thread + 1] - mid_units[thread]
        gi_top = np.empty((batch, 3 * n_top_units), np.float32)
        gh_top = np.empty((batch, 3 * n_top_units), np.float32)
        gi_mid = np.empty((batch, 3 * n_mid_units), np.float32)
        fold = gemm == 0
        r1 = fs1 // fs2
        fold_w, fold_b = mid_fold
        fold_top = fold and not has_cond
        top_fold_w, top_fold_b = top_fold
        no_base = np.zeros(3 * n_top_units, np.float32)
        g_mid = np.empty((batch * r1 if fold else 1, 3 * n_mid_units), np.float32)  # W_ih top_vec[j], per stream and j
        gh_mid = np.empty((batch, 3 * n_mid_units), np.float32)
        up_top = np.empty((batch, top_up_cols[thread + 1] - top_up_cols[thread]), np.float32)
        up_mid = np.empty((batch, mid_up_cols[thread + 1] - mid_up_cols[thread]), np.float32)
        a = np.empty((batch, dim), np.float32)
        d0, d1 = dim_cols[thread], dim_cols[thread + 1]
        c0, c1 = cls_cols[thread], cls_cols[thread + 1]
        part = np.empty((batch, d1 - d0), np.float32)
        part_cls = np.empty((batch, c1 - c0), np.float32)
        buf = np.empty(n_cls, np.float64)
        scratch = np.empty(n_cls, np.float64)
        epoch = 1
        for t in range(n_steps):
            if t % fs1 == 0:  # top tier: the last FS1 samples (+ the frame's conditioning) -> GRU -> r1 vectors
                for b in range(batch):
                    for i in range(fs1):
                        frame_top[b, i] = dequant[history[b, i]]
                if fold_top:
                    for b in range(batch):
                        _folded_input(gi_top[b], no_base, top_fold_b, frame_top[b], top_fold_w)
                else:
                    np.dot(frame_top, w_top_in, x_top)
                    for b in range(batch):
                        for k in range(n_top):
                            x_top[b, k] += b_top_in[k]
                            if has_cond:
                                x_top[b, k] += cond_frames[b, k, t // fs1]
                epoch = _tier(x_top, h_top, (t // fs1) % 2, top_gru, top_units, top_up, top_up_cols, top_vec,
                              gi_top, gh_top, up_top, gemm, sync, thread, n_threads, epoch, fold_top)
                if fold:  # the barrier in _tier has published every thread's columns of top_vec
                    _product(top_vec.reshape((batch * r1, n_mid)), mid_gru[0][0], g_mid, gemm)
            if t % fs2 == 0:  # middle tier: the last FS2 samples + the top tier's vector -> GRU -> FS2 vectors
                j = (t % fs1) // fs2
                for b in range(batch):
                    for i in range(fs2):
                        frame_mid[b, i] = dequant[history[b, fs1 - fs2 + i]]
                if fold:
                    for b in range(batch):
                        _folded_input(gi_mid[b], g_mid[b * r1 + j], fold_b, frame_mid[b], fold_w)
                else:
                    np.dot(frame_mid, w_mid_in, x_mid)
                    for b in range(batch):
                        for k in range(n_mid):
                            x_mid[b, k] += b_mid_in[k] + top_vec[b, j * n_mid + k]
                epoch = _tier(x_mid, h_mid, (t // fs2) % 2, mid_gru, mid_units, mid_up, mid_up_cols, mid_vec,
                              gi_mid, gh_mid, up_mid, gemm, sync, thread, n_threads, epoch, fold)
            # sample tier: table rows of the last FS2 samples + the middle tier's vector -> MLP -> logits
            j = t % fs2
            for b in range(batch):
                for k in range(dim):
                    a[b, k] = mid_vec[b, j * dim + k]
                for i in range(fs2):
                    cls = history[b, fs1 - fs2 + i]
                    for k in range(dim):
                        a[b, k] += table[i, cls, k]
                for k in range(dim):
                    a[b, k] = max(a[b, k], np.float32(0.0))
            _product(a, w1, part, gemm)
            for b in range(batch):
                for k in range(d1 - d0):
                    hidden1[b, d0 + k] = max(part[b, k] + b1[k], np.float32(0.0))
            epoch = _prim.barrier(sync, thread, n_threads, epoch)
            _product(hidden1, w2, part, gemm)
            for b in range(batch):
                for k in range(d1 - d0):
                    hidden2[b, d0 + k] = max(part[b, k] + b2[k], np.float32(0.0))
            epoch = _prim.barrier(sync, thread, n_threads, epoch)
            _product(hidden2, w3, part_cls, gemm)
            for b in range(batch):
                for k in range(c1 - c0):
                    logits[b, c0 + k] = part_cls[b, k] + b3[k]
                    if teacher:
                        out_logits[t, b, c0 + k] = logits[b, c0 + k]
            epoch = _prim.barrier(sync, thread, n_threads, epoch)
            for b in range(thread, batch, n_threads):  # this thread's streams: draw (or read) the next class
                if teacher:
                    nxt = inputs[t, b]
                else:
                    for k in range(n_cls):
                        buf[k] = logits[b, k]
                    nxt = _pick(buf, n_cls, uniforms[t, b], temperature, top_p, scratch)
                    out_cls[t, b] = nxt
                for i in range(fs1 - 1):
                    history[b, i] = history[b, i + 1]
                history[b, fs1 - 1] = nxt
            epoch = _prim.barrier(sync, thread, n_threads, epoch)
        return 0


# ---------------------------------------------------------------------------- packing
def _f32(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().to("cpu", torch.float32).numpy())


def _bounds(n: int, parts: int) -> np.ndarray:
    """``parts + 1`` column boundaries splitting ``n`` as evenly as possible, on multiples of 16
    (one 64-byte line of float32) when ``n`` allows, so no two threads write the same cache line."""
    align = 16 if n >= 16 * parts else 1
    units = n // align
    return np.array([align * (units * i // parts) for i in range(parts)] + [n], np.int64)


@dataclass
class _Store:
    """How weight blocks are stored for :func:`_product`: float32 dense, float32 MKL-packed (for
    ``rows`` = the batch), or float16 bits (``uint16``)."""

    dtype: str
    mkl: _prim.MKL | None
    rows: int

    def __call__(self, blocks: list[torch.Tensor]) -> np.ndarray:
        """Same-shape ``(N_t, K)`` row blocks of ``Linear``-style ``(out, in)`` weights -> ``(len, P)``,
        one flat ``(K, N_t)`` matrix per row (one copy each: transpose, convert, lay out)."""
        blocks = [b.detach().cpu().float() for b in blocks]
        if self.dtype == "float16":
            if max(b.abs().max().item() for b in blocks) > _FLOAT16_MAX:
                raise ValueError("a weight exceeds the float16 range; generate with weights='float32'")
            halves = torch.stack([b.to(torch.float16).t() for b in blocks])  # convert first: the transposing copy moves half the bytes
            return halves.reshape(len(blocks), -1).numpy().view(np.uint16)
        blocks = [b.t() for b in blocks]  # (K, N_t) views
        if self.mkl is None:
            return torch.stack(blocks).reshape(len(blocks), -1).numpy()
        n_in, n_out = blocks[0].shape
        out = np.empty((len(blocks), self.mkl.packed_size(n_in, n_out, self.rows)), np.float32)
        for block, row in zip(blocks, out):
            self.mkl.pack(block.contiguous().numpy(), self.rows, row)
        return out


def _gru_parts(gru: torch.nn.GRU, bounds: np.ndarray, store: _Store) -> list[tuple]:
    """Per thread: ``(w_ih (L, P), w_hh (L, P), b_ih (L, 3 H_t), b_hh (L, 3 H_t))`` for its units,
    gate columns grouped ``[r | z | n]``."""
    layers = range(gru.num_layers)
    n_hidden = gru.hidden_size
    parts = []
    for u0, u1 in zip(bounds[:-1], bounds[1:]):
        rows = torch.cat([torch.arange(g * n_hidden + u0, g * n_hidden + u1) for g in range(3)])
        parts.append((
            store([getattr(gru, f"weight_ih_l{i}")[rows] for i in layers]),
            store([getattr(gru, f"weight_hh_l{i}")[rows] for i in layers]),
            np.stack([_f32(getattr(gru, f"bias_ih_l{i}")[rows]) for i in layers]),
            np.stack([_f32(getattr(gru, f"bias_hh_l{i}")[rows]) for i in layers]),
        ))
    return parts


def _fold_parts(gru: torch.nn.GRU, frame_input: torch.nn.Linear, bounds: np.ndarray) -> list[tuple]:
    """Per thread, float32: ``(W (frame, 3 H_t), b (3 H_t,))`` = layer 0's ``W_ih`` (its gate rows) times
    the tier's frame-input weight and bias, for the folded tier input (see :func:`_run`)."""
    n_hidden = gru.hidden_size
    w_ih = gru.weight_ih_l0.detach().float().cpu()
    w_in, b_in = frame_input.weight.detach().float().cpu(), frame_input.bias.detach().float().cpu()
    parts = []
    for u0, u1 in zip(bounds[:-1], bounds[1:]):
        rows = torch.cat([torch.arange(g * n_hidden + u0, g * n_hidden + u1) for g in range(3)])
        parts.append((_f32((w_ih[rows] @ w_in).t()), _f32(w_ih[rows] @ b_in)))
    return parts


def _linear_parts(linear: torch.nn.Linear, bounds: np.ndarray, store: _Store) -> list[tuple]:
    """Per thread: ``(w (P,), b)``, its output columns of ``linear``."""
    return [(store([linear.weight[c0:c1]])[0], _f32(linear.bias[c0:c1])) for c0, c1 in zip(bounds[:-1], bounds[1:])]


def mlp_input_table(model) -> np.ndarray:
    """``(FS2, 256, mlp_hidden)``: row ``[i, c]`` is ``mlp_input`` applied to class ``c`` at window position ``i``."""
    c = model.config
    w = model.mlp_input.weight.detach().float().cpu().reshape(c.mlp_hidden, c.frame_size, c.embedding_dim)
    return _f32(torch.einsum("ce,hie->ich", model.embedding.weight.detach().float().cpu(), w))


@dataclass
class _Packed:
    """A model's weights laid out for :func:`_run`: the small ones every thread reads whole, and
    per thread its column blocks ``(top_gru, top_up, mid_gru, mid_up, mlp)`` and its tier folds."""

    small: tuple  # (dequant, (w_top_in, b_top_in), (w_mid_in, b_mid_in), mlp input table)
    per_thread: list[tuple]  # (top_gru, top_up, mid_gru, mid_up, mlp, top_fold, mid_fold)
    cols: tuple  # column boundaries: top units, top upsampling, middle units, middle upsampling, MLP hidden, classes


# model -> (key, _Packed): re-laying out ~150 MB of weights takes most of a second, so generate()
# calls in a row reuse it; the key holds every parameter's storage and version, which any
# in-place update (an optimiser step, load_state_dict) changes.
_PACK_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _pack(model, store: _Store, n_threads: int) -> _Packed:
    key = (store.dtype, store.mkl is not None, store.rows if store.mkl is not None else 0, n_threads,
           _prim.parameter_key(model))
    cached = _PACK_CACHE.get(model)
    if cached is not None and cached[0] == key:
        return cached[1]
    _PACK_CACHE.pop(model, None)  # free the old layout before building the new one
    c = model.config
    r1 = c.top_frame_size // c.frame_size
    cols = tuple(_bounds(n, n_threads) for n in (c.top_hidden, r1 * c.mid_hidden, c.mid_hidden, c.frame_size * c.mlp_hidden, c.mlp_hidden, c.n_classes))
    mkl_threads = store.mkl.sequential() if store.mkl is not None else None
    try:
        with torch.no_grad():
            top_gru, top_up = _gru_parts(model.top_rnn, cols[0], store), _linear_parts(model.top_upsample, cols[1], store)
            mid_gru, mid_up = _gru_parts(model.mid_rnn, cols[2], store), _linear_parts(model.mid_upsample, cols[3], store)
            top_fold, mid_fold = _fold_parts(model.top_rnn, model.top_input, cols[0]), _fold_parts(model.mid_rnn, model.mid_input, cols[2])
            w1, w2 = _linear_parts(model.mlp[1], cols[4], store), _linear_parts(model.mlp[3], cols[4], store)
            w3 = _linear_parts(model.mlp[5], cols[5], store)
            small = (
                _f32(2.0 * mu_law_decode(torch.arange(c.n_classes), c.mu_law_bits)),
                (_f32(model.top_input.weight.t()), _f32(model.top_input.bias)),
                (_f32(model.mid_input.weight.t()), _f32(model.mid_input.bias)),
                mlp_input_table(model),
            )
    finally:
        if store.mkl is not None:
            store.mkl.restore(mkl_threads)
    per_thread = [(top_gru[t], top_up[t], mid_gru[t], mid_up[t], (*w1[t], *w2[t], *w3[t]), top_fold[t], mid_fold[t]) for t in range(n_threads)]
    packed = _Packed(small, per_thread, cols)
    _PACK_CACHE[model] = (key, packed)
    return packed


def _threads(n_threads: int | None) -> int:
    """Threads to split the products over: ``n_threads``, or as many as PyTorch uses (at most the cores)."""
    if n_threads is not None:
        return max(1, int(n_threads))
    return max(1, min(torch.get_num_threads(), os.cpu_count() or 1))


# ---------------------------------------------------------------------------- driver
def uses_packed_gemm(weights: str, batch: int) -> bool:
    """Whether the loop multiplies through MKL's packed GEMM (float32 batches, MKL present); when it
    does not, it folds the tier inputs (see :func:`_run`)."""
    return weights == "float32" and batch > 1 and _prim.mkl() is not None


def _drive(model, n_steps, teacher_targets, cond, temperature, top_p, batch, generator, weights, n_threads):
    if weights not in WEIGHT_DTYPES:
        raise ValueError(f"weights must be one of {WEIGHT_DTYPES}, got {weights!r}")
    c = model.config
    n_threads = _threads(n_threads)
    mkl = _prim.mkl() if uses_packed_gemm(weights, batch) else None
    packed = _pack(model, _Store(weights, mkl, batch), n_threads)
    with torch.no_grad():
        state = model.new_state(batch, cond, n_steps)
        cond_frames = _f32(state.cond_frames) if state.cond_frames is not None else np.zeros((1, 1, 1), np.float32)
        h_top = np.zeros((2, *state.hidden_top.shape), np.float32)
        h_mid = np.zeros((2, *state.hidden_mid.shape), np.float32)
        h_top[0], h_mid[0] = _f32(state.hidden_top), _f32(state.hidden_mid)
    r1 = c.top_frame_size // c.frame_size
    shared = (
        state.history.numpy().copy(), h_top, h_mid,
        np.zeros((batch, r1 * c.mid_hidden), np.float32), np.zeros((batch, c.frame_size * c.mlp_hidden), np.float32),
        np.zeros((batch, c.mlp_hidden), np.float32), np.zeros((batch, c.mlp_hidden), np.float32),
        np.zeros((batch, c.n_classes), np.float32),
    )
    teacher = teacher_targets is not None
    inputs = teacher_targets.t().contiguous().numpy().astype(np.int64) if teacher else np.zeros((1, batch), np.int64)
    out_logits = np.zeros((n_steps if teacher else 1, batch, c.n_classes), np.float32)
    out_cls = np.zeros((n_steps, batch), np.int64)
    uniforms = np.zeros((1, batch), np.float64) if teacher else torch.rand(n_steps, batch, generator=generator, dtype=torch.float64).numpy()
    sync = _prim.new_sync(n_threads)
    gemm = mkl.compute if mkl is not None else 0

    def work(thread):
        mkl_threads = mkl.sequential() if mkl is not None else None
        try:
            _run(
                thread, n_threads, sync, gemm, n_steps, teacher, inputs, uniforms, float(temperature), float(top_p),
                cond_frames, state.cond_frames is not None, *shared, out_logits, out_cls, *packed.small,
                *packed.per_thread[thread], packed.cols,
            )
        finally:
            if mkl is not None:
                mkl.restore(mkl_threads)

    # the BLAS that numba's np.dot calls must not start threads of its own inside our threads
    blas_limit = _wn.threadpool_limits(limits=1, user_api="blas") if _wn.threadpool_limits is not None else None
    try:
        if n_threads == 1:
            work(0)
        else:
            with ThreadPoolExecutor(n_threads) as pool:
                list(pool.map(work, range(n_threads)))
    finally:
        if blas_limit is not None:
            blas_limit.restore_original_limits()
    if teacher:
        return torch.from_numpy(out_logits).permute(1, 2, 0).contiguous()  # (B, 256, T)
    return torch.from_numpy(out_cls.T.copy())  # (B, T) classes


def teacher_forced(model, targets: torch.Tensor, cond=None, weights: str = "float32", n_threads: int | None = None) -> torch.Tensor:
    """Logits ``(B, 256, T)`` of the fused loop fed the ground-truth ``targets (B, T)`` (silence as context)."""
    if not available():
        raise RuntimeError(unavailable_reason())
    return _drive(model, targets.shape[-1], targets.cpu(), cond, 1.0, 1.0, targets.shape[0], None, weights, n_threads)


def generate(model, n_samples, cond, temperature, top_p, batch_size, generator, weights: str = "float32", n_threads: int | None = None) -> torch.Tensor:
    """Sampled classes ``(B, n_samples)``; ``n_threads`` defaults to PyTorch's thread count."""
    if not available():
        raise RuntimeError(unavailable_reason())
    return _drive(model, n_samples, None, cond, temperature, top_p, batch_size, generator, weights, n_threads)
