"""Fused SampleRNN generation loop (numba), the fast path of :meth:`SampleRNN.generate`.

Same design as :mod:`waveforge.kernels.wavenet`: weights packed input-major for ``np.dot`` (single-
threaded BLAS), the batch split over threads, a rational ``tanh`` for the GRU gates and the PyTorch
gate order ``(r, z, n)``::

    r = sigma(W_ir x + b_ir + W_hr h + b_hr),  z = sigma(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),  h' = (1 - z) * n + z * h

The top tier runs every FS1 samples, the middle tier every FS2 samples, the MLP every sample.
At batch 1 the frame tiers read ~50 MB of GRU weights per tier step, so the loop is bound by memory
bandwidth, not arithmetic; batches reuse each weight read across the streams.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from waveforge.audio.mulaw import mu_law_decode
from waveforge.kernels import wavenet as _wn

available = _wn.available
unavailable_reason = _wn.unavailable_reason

if _wn.numba is not None:
    numba = _wn.numba
    _tanh = _wn._tanh
    _pick = _wn._pick
    _matmul = _wn._matmul
    _HALF = _wn._HALF
    _FM = _wn._FASTMATH

    @numba.njit(inline="always", fastmath=_FM, error_model="numpy")
    def _gru_update(gi, gh, h_row, n_hidden):
        """In place: ``h_row <- GRU(h_row)`` from ``gi = W_i x + b_i`` and ``gh = W_h h + b_h`` (rows of 3H)."""
        for k in range(n_hidden):
            r = _HALF + _HALF * _tanh(_HALF * (gi[k] + gh[k]))
            z = _HALF + _HALF * _tanh(_HALF * (gi[n_hidden + k] + gh[n_hidden + k]))
            n = _tanh(gi[2 * n_hidden + k] + r * gh[2 * n_hidden + k])
            h_row[k] = (np.float32(1.0) - z) * n + z * h_row[k]

    @numba.njit(nogil=True, fastmath=_FM, error_model="numpy")
    def _gru_stack(x, h, w_ih, w_hh, b_ih, b_hh, gi, gh):
        """Multi-layer GRU, one step: ``x (B, H)`` -> ``h (L, B, H)`` updated; returns the top layer's output."""
        n_layers, batch, n_hidden = h.shape
        inp = x
        for layer in range(n_layers):
            _matmul(inp, w_ih[layer], gi)
            _matmul(h[layer], w_hh[layer], gh)
            for b in range(batch):
                for k in range(3 * n_hidden):
                    gi[b, k] += b_ih[layer, k]
                    gh[b, k] += b_hh[layer, k]
                _gru_update(gi[b], gh[b], h[layer, b], n_hidden)
            inp = h[layer]
        return inp

    @numba.njit(nogil=True, cache=True, fastmath=_FM, error_model="numpy")
    def _run(
        n_steps, t0, teacher, inputs, history, h_top, h_mid, top_vec, mid_vec,
        dequant, w_top_in, b_top_in, w_top_ih, w_top_hh, b_top_ih, b_top_hh, w_top_up, b_top_up,
        w_mid_in, b_mid_in, w_mid_ih, w_mid_hh, b_mid_ih, b_mid_hh, w_mid_up, b_mid_up,
        embedding, w_mlp_in, w1, b1, w2, b2, w3, b3,
        cond_frames, has_cond, uniforms, temperature, top_p,
        out_logits, out_cls,
    ):
        batch, fs1 = history.shape
        n_top = h_top.shape[2]
        n_mid = h_mid.shape[2]
        fs2 = w_mid_in.shape[0]
        r1 = fs1 // fs2
        dim = w1.shape[0]
        emb_dim = embedding.shape[1]
        n_cls = w3.shape[1]
        frame_top = np.empty((batch, fs1), np.float32)
        frame_mid = np.empty((batch, fs2), np.float32)
        x_top = np.empty((batch, n_top), np.float32)
        x_mid = np.empty((batch, n_mid), np.float32)
        gi_top = np.empty((batch, 3 * n_top), np.float32)
        gh_top = np.empty((batch, 3 * n_top), np.float32)
        gi_mid = np.empty((batch, 3 * n_mid), np.float32)
        gh_mid = np.empty((batch, 3 * n_mid), np.float32)
        up_top = np.empty((batch, r1 * n_mid), np.float32)
        up_mid = np.empty((batch, fs2 * dim), np.float32)
        emb = np.empty((batch, fs2 * emb_dim), np.float32)
        a = np.empty((batch, dim), np.float32)
        c = np.empty((batch, dim), np.float32)
        logits = np.empty((batch, n_cls), np.float32)
        buf = np.empty(n_cls, np.float64)
        scratch = np.empty(n_cls, np.float64)
        for n in range(n_steps):
            t = t0 + n
            if t % fs1 == 0:  # top tier: the last FS1 samples (+ the frame's conditioning) -> GRU -> r1 vectors
                for b in range(batch):
                    for i in range(fs1):
                        frame_top[b, i] = dequant[history[b, i]]
                _matmul(frame_top, w_top_in, x_top)
                for b in range(batch):
                    for k in range(n_top):
                        x_top[b, k] += b_top_in[k]
                        if has_cond:
                            x_top[b, k] += cond_frames[b, k, t // fs1]
                out = _gru_stack(x_top, h_top, w_top_ih, w_top_hh, b_top_ih, b_top_hh, gi_top, gh_top)
                _matmul(out, w_top_up, up_top)
                for b in range(batch):
                    for k in range(r1 * n_mid):
                        top_vec[b, k] = up_top[b, k] + b_top_up[k]
            if t % fs2 == 0:  # middle tier: the last FS2 samples + the top tier's vector -> GRU -> FS2 vectors
                j = (t % fs1) // fs2
                for b in range(batch):
                    for i in range(fs2):
                        frame_mid[b, i] = dequant[history[b, fs1 - fs2 + i]]
                _matmul(frame_mid, w_mid_in, x_mid)
                for b in range(batch):
                    for k in range(n_mid):
                        x_mid[b, k] += b_mid_in[k] + top_vec[b, j * n_mid + k]
                out = _gru_stack(x_mid, h_mid, w_mid_ih, w_mid_hh, b_mid_ih, b_mid_hh, gi_mid, gh_mid)
                _matmul(out, w_mid_up, up_mid)
                for b in range(batch):
                    for k in range(fs2 * dim):
                        mid_vec[b, k] = up_mid[b, k] + b_mid_up[k]
            # sample tier: embeddings of the last FS2 samples + the middle tier's vector -> MLP -> logits
            j = t % fs2
            for b in range(batch):
                for i in range(fs2):
                    cls = history[b, fs1 - fs2 + i]
                    for k in range(emb_dim):
                        emb[b, i * emb_dim + k] = embedding[cls, k]
            _matmul(emb, w_mlp_in, a)
            for b in range(batch):
                for k in range(dim):
                    a[b, k] = max(a[b, k] + mid_vec[b, j * dim + k], np.float32(0.0))
            _matmul(a, w1, c)
            for b in range(batch):
                for k in range(dim):
                    c[b, k] = max(c[b, k] + b1[k], np.float32(0.0))
            _matmul(c, w2, a)
            for b in range(batch):
                for k in range(dim):
                    a[b, k] = max(a[b, k] + b2[k], np.float32(0.0))
            _matmul(a, w3, logits)
            for b in range(batch):
                for k in range(n_cls):
                    logits[b, k] += b3[k]
                if teacher:
                    for k in range(n_cls):
                        out_logits[n, b, k] = logits[b, k]
                    nxt = inputs[n, b]
                else:
                    for k in range(n_cls):
                        buf[k] = logits[b, k]
                    nxt = _pick(buf, n_cls, uniforms[n, b], temperature, top_p, scratch)
                    out_cls[n, b] = nxt
                for i in range(fs1 - 1):
                    history[b, i] = history[b, i + 1]
                history[b, fs1 - 1] = nxt
        return 0


def _f32(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().to("cpu", torch.float32).numpy())


def _gru_weights(gru: torch.nn.GRU):
    layers = range(gru.num_layers)
    return (
        np.stack([_f32(getattr(gru, f"weight_ih_l{i}").t()) for i in layers]),  # (L, in, 3H)
        np.stack([_f32(getattr(gru, f"weight_hh_l{i}").t()) for i in layers]),  # (L, H, 3H)
        np.stack([_f32(getattr(gru, f"bias_ih_l{i}")) for i in layers]),
        np.stack([_f32(getattr(gru, f"bias_hh_l{i}")) for i in layers]),
    )


def _drive(model, n_steps: int, teacher_targets, cond, temperature, top_p, batch, generator):
    c = model.config
    with torch.no_grad():
        state = model.new_state(batch, cond, n_steps)
        cond_frames = None if state.cond_frames is None else _f32(state.cond_frames)
    weights = (
        _f32(2.0 * mu_law_decode(torch.arange(c.n_classes), c.mu_law_bits)),
        _f32(model.top_input.weight.t()), _f32(model.top_input.bias), *_gru_weights(model.top_rnn),
        _f32(model.top_upsample.weight.t()), _f32(model.top_upsample.bias),
        _f32(model.mid_input.weight.t()), _f32(model.mid_input.bias), *_gru_weights(model.mid_rnn),
        _f32(model.mid_upsample.weight.t()), _f32(model.mid_upsample.bias),
        _f32(model.embedding.weight), _f32(model.mlp_input.weight.t()),
        _f32(model.mlp[1].weight.t()), _f32(model.mlp[1].bias), _f32(model.mlp[3].weight.t()), _f32(model.mlp[3].bias),
        _f32(model.mlp[5].weight.t()), _f32(model.mlp[5].bias),
    )
    teacher = teacher_targets is not None
    inputs = teacher_targets.t().contiguous().numpy().astype(np.int64) if teacher else np.zeros((1, batch), np.int64)
    logits = np.zeros((n_steps if teacher else 1, batch, c.n_classes), np.float32)
    out_cls = np.zeros((n_steps, batch), np.int64)
    uniforms = np.zeros((1, batch), np.float64) if teacher else torch.rand(n_steps, batch, generator=generator, dtype=torch.float64).numpy()
    splits = np.array_split(np.arange(batch), _wn._threads_for(batch))

    def work(idx):
        sl = slice(int(idx[0]), int(idx[-1]) + 1)
        nb = sl.stop - sl.start
        history = state.history[sl].numpy().copy()
        h_top, h_mid = _f32(state.hidden_top[:, sl]), _f32(state.hidden_mid[:, sl])
        top_vec = np.zeros((nb, c.top_frame_size // c.frame_size * c.mid_hidden), np.float32)
        mid_vec = np.zeros((nb, c.frame_size * c.mlp_hidden), np.float32)
        cf = np.ascontiguousarray(cond_frames[sl]) if cond_frames is not None else np.zeros((1, 1, 1), np.float32)
        _run(
            n_steps, 0, teacher, np.ascontiguousarray(inputs[:, sl]), history, h_top, h_mid, top_vec, mid_vec, *weights,
            cf, cond_frames is not None, np.ascontiguousarray(uniforms[:, sl]), float(temperature), float(top_p),
            logits[:, sl], out_cls[:, sl],
        )

    blas_limit = _wn.threadpool_limits(limits=1, user_api="blas") if _wn.threadpool_limits is not None else None
    try:
        if len(splits) == 1:
            work(splits[0])
        else:
            with ThreadPoolExecutor(len(splits)) as pool:
                list(pool.map(work, splits))
    finally:
        if blas_limit is not None:
            blas_limit.restore_original_limits()
    if teacher:
        return torch.from_numpy(logits).permute(1, 2, 0).contiguous()  # (B, 256, T)
    return torch.from_numpy(out_cls.T.copy())  # (B, T) classes


def teacher_forced(model, targets: torch.Tensor, cond=None) -> torch.Tensor:
    """Logits ``(B, 256, T)`` of the fused loop fed the ground-truth ``targets (B, T)`` (silence as context)."""
    if not available():
        raise RuntimeError(unavailable_reason())
    return _drive(model, targets.shape[-1], targets.cpu(), cond, 1.0, 1.0, targets.shape[0], None)


def generate(model, n_samples, cond, temperature, top_p, batch_size, generator) -> torch.Tensor:
    """Sampled classes ``(B, n_samples)``."""
    if not available():
        raise RuntimeError(unavailable_reason())
    return _drive(model, n_samples, None, cond, temperature, top_p, batch_size, generator)
