"""SampleRNN (Mehri et al. 2017), three tiers: frame RNNs at 16 and 4 samples, then a sample-level MLP.

Notation: the top tier reads non-overlapping frames of ``FS1 = 16`` past samples, runs a GRU, and
upsamples each output by ``r1 = FS1 / FS2 = 4`` learned projections into conditioning vectors for
the middle tier; the middle tier reads frames of ``FS2 = 4`` samples plus that conditioning, runs a
GRU and upsamples by ``r2 = FS2`` into one vector per sample; the sample-level MLP reads the
embeddings of the previous ``FS2`` samples plus that vector and outputs 256-way logits (mu-law
quantised, 8 bit).

Training uses truncated BPTT: :meth:`SampleRNN.forward` takes one subsequence plus the hidden
state left by the previous one and returns the new state (the training task detaches it).
Local conditioning ``cond (B, C, F)`` is upsampled by the shared
:class:`~waveforge.nn.ConditionUpsampler` to top-tier frames and added to the top tier's input.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from waveforge import kernels
from waveforge.audio.mulaw import mu_law_decode, mu_law_encode
from waveforge.models.config import ModelConfig
from waveforge.nn.sampling import sample_categorical
from waveforge.nn.upsample import ConditionUpsampler
from waveforge.utils.progress import progress


@dataclass
class SampleRNNConfig(ModelConfig):
    top_frame_size: int = 16  # FS1
    frame_size: int = 4  # FS2, also the sample MLP's input window
    rnn_layers: int = 2
    top_hidden: int = 1024
    mid_hidden: int = 1024
    mlp_hidden: int = 1024
    embedding_dim: int = 256
    mu_law_bits: int = 8
    cond_channels: int = 0  # local conditioning channels (n_mels or 264); 0: none
    hop_length: int = 256  # samples per conditioning frame; a multiple of top_frame_size

    PRESETS = {
        # three tiers as in the paper: 2-layer GRUs with 1024 units in both frame tiers, 1024-wide MLP
        "paper": {},
        # half the paper's width: about a quarter of its weights and FLOPs per sample
        "small": dict(top_hidden=512, mid_hidden=512, mlp_hidden=512, embedding_dim=128),
        "tiny": dict(rnn_layers=1, top_hidden=24, mid_hidden=24, mlp_hidden=32, embedding_dim=8, hop_length=32),
    }

    def __post_init__(self):
        if self.frame_size < 1 or self.top_frame_size % self.frame_size:
            raise ValueError(f"top_frame_size ({self.top_frame_size}) must be a multiple of frame_size ({self.frame_size})")
        if self.cond_channels and self.hop_length % self.top_frame_size:
            raise ValueError(f"hop_length ({self.hop_length}) must be a multiple of top_frame_size ({self.top_frame_size})")
        if self.rnn_layers < 1:
            raise ValueError("rnn_layers must be >= 1")

    @property
    def n_classes(self) -> int:
        return 2**self.mu_law_bits



@dataclass
class SampleRNNOutput:
    logits: torch.Tensor  # (B, n_classes, T)
    hidden: tuple[torch.Tensor, torch.Tensor]  # top (layers, B, top_hidden), middle (layers, B, mid_hidden)


@dataclass
class SampleRNNState:
    """Generation state: the last ``FS1`` samples, both GRU states, and the pending tier outputs."""

    history: torch.Tensor  # (B, FS1) int64, oldest first
    hidden_top: torch.Tensor
    hidden_mid: torch.Tensor
    cond_frames: torch.Tensor | None  # (B, top_hidden, n_top_frames) conditioning per top frame
    top_vectors: torch.Tensor | None = None  # (B, r1, mid_hidden) from the last top step
    mid_vectors: torch.Tensor | None = None  # (B, FS2, mlp_hidden) from the last middle step
    t: int = 0


class SampleRNN(nn.Module):
    """``forward(samples, hidden=None, cond=None) -> SampleRNNOutput``.

    ``samples: (B, FS1 + T)`` int64 mu-law classes with ``T`` a multiple of ``FS1``: the first
    ``FS1`` are context (silence for the first subsequence), the logits ``(B, 256, T)`` predict
    ``samples[:, FS1:]``. ``cond: (B, C, T // hop_length)`` conditions the predicted samples.
    """

    def __init__(self, config: SampleRNNConfig):
        super().__init__()
        self.config = c = config
        r1 = c.top_frame_size // c.frame_size
        self.top_input = nn.Linear(c.top_frame_size, c.top_hidden)
        self.top_rnn = nn.GRU(c.top_hidden, c.top_hidden, c.rnn_layers, batch_first=True)
        self.top_upsample = nn.Linear(c.top_hidden, r1 * c.mid_hidden)  # r1 learned projections
        self.mid_input = nn.Linear(c.frame_size, c.mid_hidden)
        self.mid_rnn = nn.GRU(c.mid_hidden, c.mid_hidden, c.rnn_layers, batch_first=True)
        self.mid_upsample = nn.Linear(c.mid_hidden, c.frame_size * c.mlp_hidden)
        self.embedding = nn.Embedding(c.n_classes, c.embedding_dim)
        self.mlp_input = nn.Linear(c.frame_size * c.embedding_dim, c.mlp_hidden, bias=False)  # = conv of width FS2
        self.mlp = nn.Sequential(
            nn.ReLU(), nn.Linear(c.mlp_hidden, c.mlp_hidden), nn.ReLU(), nn.Linear(c.mlp_hidden, c.mlp_hidden), nn.ReLU(),
            nn.Linear(c.mlp_hidden, c.n_classes),
        )
        self.top_h0 = nn.Parameter(torch.zeros(c.rnn_layers, 1, c.top_hidden))  # learned initial states
        self.mid_h0 = nn.Parameter(torch.zeros(c.rnn_layers, 1, c.mid_hidden))
        self.upsampler = None
        if c.cond_channels:
            self.upsampler = ConditionUpsampler(c.cond_channels, c.hop_length // c.top_frame_size, out_channels=c.top_hidden)

    # ---------------------------------------------------------------- helpers
    @property
    def silence(self) -> int:
        return 2 ** (self.config.mu_law_bits - 1)

    def initial_hidden(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.top_h0.expand(-1, batch_size, -1).contiguous(), self.mid_h0.expand(-1, batch_size, -1).contiguous()

    def _frame_input(self, classes: torch.Tensor) -> torch.Tensor:
        """Classes -> dequantised samples scaled to [-2, 2], the frame tiers' input (as in the paper)."""
        return 2.0 * mu_law_decode(classes, self.config.mu_law_bits)

    def _cond_frames(self, cond: torch.Tensor | None, n_samples: int, batch_size: int) -> torch.Tensor | None:
        c = self.config
        if self.upsampler is None:
            if cond is not None:
                raise ValueError("this SampleRNN is unconditional (cond_channels=0) but cond was given")
            return None
        if cond is None or cond.dim() != 3 or cond.shape[:2] != (batch_size, c.cond_channels):
            raise ValueError(f"this SampleRNN needs cond of shape ({batch_size}, {c.cond_channels}, F)")
        if cond.shape[-1] * c.hop_length != n_samples:
            raise ValueError(f"cond has {cond.shape[-1]} frames; {n_samples} samples need {n_samples // c.hop_length}")
        return self.upsampler(cond)  # (B, top_hidden, n_samples // FS1)

    # ---------------------------------------------------------------- training pass
    def forward(
        self, samples: torch.Tensor, hidden: tuple[torch.Tensor, torch.Tensor] | None = None, cond: torch.Tensor | None = None
    ) -> SampleRNNOutput:
        c = self.config
        fs1, fs2 = c.top_frame_size, c.frame_size
        batch, total = samples.shape
        n = total - fs1
        if samples.dtype != torch.long or n <= 0 or n % fs1:
            raise ValueError(f"samples must be (B, {fs1} + T) int64 with T a positive multiple of {fs1}, got {tuple(samples.shape)}")
        h_top, h_mid = hidden if hidden is not None else self.initial_hidden(batch)
        x = self._frame_input(samples)  # (B, FS1 + T)
        # top tier: frame i = samples [FS1 i, FS1 (i+1)) predicts targets [FS1 i, FS1 (i+1))
        top_in = self.top_input(x[:, :n].reshape(batch, n // fs1, fs1))  # (B, T/FS1, top_hidden)
        cond_frames = self._cond_frames(cond, n, batch)
        if cond_frames is not None:
            top_in = top_in + cond_frames.transpose(1, 2)
        top_out, h_top = self.top_rnn(top_in, h_top)
        top_cond = self.top_upsample(top_out).reshape(batch, n // fs2, c.mid_hidden)  # (B, T/FS2, mid_hidden)
        # middle tier: frame m = the FS2 samples before target FS2 m
        mid_in = self.mid_input(x[:, fs1 - fs2 : fs1 - fs2 + n].reshape(batch, n // fs2, fs2)) + top_cond
        mid_out, h_mid = self.mid_rnn(mid_in, h_mid)
        mid_cond = self.mid_upsample(mid_out).reshape(batch, n, c.mlp_hidden)  # (B, T, mlp_hidden)
        # sample tier: the FS2 samples before each target, embedded
        windows = samples[:, fs1 - fs2 : total - 1].unfold(1, fs2, 1)  # (B, T, FS2)
        emb = self.embedding(windows).reshape(batch, n, fs2 * c.embedding_dim)
        logits = self.mlp(self.mlp_input(emb) + mid_cond)  # (B, T, n_classes)
        return SampleRNNOutput(logits.transpose(1, 2), (h_top, h_mid))

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy in nats per sample; ``targets = samples[:, FS1:]``."""
        return -self.log_prob_of(logits, targets).mean()

    @staticmethod
    def log_prob_of(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """``log p(target_t | past)`` in nats, ``(B, T)``, from :meth:`forward`'s logits."""
        return -F.cross_entropy(logits, targets, reduction="none")

    def subsequences(self, audio: torch.Tensor, cond: torch.Tensor | None, length: int):
        """Yield ``(samples (B, FS1 + L), targets (B, L), cond slice)`` over ``audio (B, 1, T)`` in order, for
        truncated BPTT and :meth:`log_prob`: silence before the first, the last possibly shorter."""
        c = self.config
        classes = mu_law_encode(audio[:, 0], c.mu_law_bits)  # (B, T)
        context = torch.full((classes.shape[0], c.top_frame_size), self.silence, dtype=torch.long, device=classes.device)
        padded = torch.cat([context, classes], dim=1)
        for lo in range(0, classes.shape[-1], length):
            hi = min(lo + length, classes.shape[-1])
            cond_slice = None if cond is None else cond[:, :, lo // c.hop_length : hi // c.hop_length]
            yield padded[:, lo : hi + c.top_frame_size], classes[:, lo:hi], cond_slice

    def log_prob(self, audio: torch.Tensor, cond: torch.Tensor | None = None, chunk: int = 16384) -> torch.Tensor:
        """``log p(audio | cond)`` in nats per sample: ``audio (B, 1, T)`` -> ``(B, T)``, ``T`` a multiple of
        ``top_frame_size`` (and of ``hop_length`` when conditioned). It runs in chunks with the GRU state
        carried across them, as truncated-BPTT training does, so it equals one whole pass."""
        c = self.config
        step = c.hop_length if cond is not None else c.top_frame_size
        hidden, pieces = None, []
        for samples, targets, cond_slice in self.subsequences(audio, cond, max(step, chunk // step * step)):
            out = self(samples, hidden, cond_slice)
            hidden = out.hidden
            pieces.append(self.log_prob_of(out.logits, targets))
        return torch.cat(pieces, dim=-1)

    # ---------------------------------------------------------------- generation
    def new_state(self, batch_size: int = 1, cond: torch.Tensor | None = None, n_samples: int | None = None) -> SampleRNNState:
        device = self.top_h0.device
        if cond is not None:
            batch_size = cond.shape[0]
            n_samples = cond.shape[-1] * self.config.hop_length
        cond_frames = self._cond_frames(cond, n_samples or 0, batch_size)
        h_top, h_mid = self.initial_hidden(batch_size)
        history = torch.full((batch_size, self.config.top_frame_size), self.silence, dtype=torch.long, device=device)
        return SampleRNNState(history, h_top, h_mid, cond_frames)

    def step(self, state: SampleRNNState) -> torch.Tensor:
        """Logits ``(B, n_classes)`` of the next sample; runs the top tier every FS1 samples and the middle
        tier every FS2 samples. Call :meth:`push` with the chosen sample before the next step."""
        c = self.config
        fs1, fs2 = c.top_frame_size, c.frame_size
        t = state.t
        if t % fs1 == 0:
            top_in = self.top_input(self._frame_input(state.history))  # (B, top_hidden)
            if state.cond_frames is not None:
                top_in = top_in + state.cond_frames[:, :, t // fs1]
            out, state.hidden_top = self.top_rnn(top_in[:, None], state.hidden_top)
            state.top_vectors = self.top_upsample(out[:, 0]).reshape(-1, fs1 // fs2, c.mid_hidden)
        if t % fs2 == 0:
            mid_in = self.mid_input(self._frame_input(state.history[:, fs1 - fs2 :])) + state.top_vectors[:, (t % fs1) // fs2]
            out, state.hidden_mid = self.mid_rnn(mid_in[:, None], state.hidden_mid)
            state.mid_vectors = self.mid_upsample(out[:, 0]).reshape(-1, fs2, c.mlp_hidden)
        emb = self.embedding(state.history[:, fs1 - fs2 :]).flatten(1)  # (B, FS2 * embedding_dim)
        return self.mlp(self.mlp_input(emb) + state.mid_vectors[:, t % fs2])

    def push(self, state: SampleRNNState, sample: torch.Tensor) -> None:
        """Append the sample ``(B,)`` just generated (or the ground truth, when teacher forcing)."""
        state.history = torch.cat([state.history[:, 1:], sample[:, None]], dim=1)
        state.t += 1

    @torch.no_grad()
    def generate(
        self,
        n_samples: int | None = None,
        cond: torch.Tensor | None = None,
        temperature: float = 1.0,
        top_p: float = 1.0,
        batch_size: int = 1,
        progress: bool = False,
        generator: torch.Generator | None = None,
        backend: str = "auto",
        weights: str = "auto",
    ) -> torch.Tensor:
        """Sample ``(B, 1, n_samples)`` audio in [-1, 1]; with ``cond (B, C, F)``, ``n_samples = F * hop``.

        ``backend``: ``"fast"`` (the fused numba loop in :mod:`waveforge.kernels.samplernn`),
        ``"reference"`` (the PyTorch :meth:`step` loop) or ``"auto"`` (fast when available, on CPU).
        ``weights``: how the fast path stores the large weight matrices. ``"float16"`` halves the
        memory traffic that bounds a single stream; products still accumulate in float32, and logits
        differ from float32 weights by ~1e-3 of their scale. ``"auto"`` (the default) picks float16
        where the loop is bandwidth-bound (no packed GEMM: one stream, or no MKL) and float32
        otherwise (a batch is bound by arithmetic); the reference backend is always float32.
        ``"float32"`` is the exact path (it reproduces :meth:`forward`'s logits).
        """
        if cond is not None:
            n_samples = cond.shape[-1] * self.config.hop_length
            batch_size = cond.shape[0]
        if not n_samples or n_samples < 1:
            raise ValueError("n_samples (or cond) is required")
        if backend not in ("auto", "fast", "reference"):
            raise ValueError(f"backend must be 'auto', 'fast' or 'reference', got {backend!r}")
        if weights not in ("auto", "float32", "float16"):
            raise ValueError(f"weights must be 'auto', 'float32' or 'float16', got {weights!r}")
        device = self.top_h0.device
        if cond is not None and cond.device != device:
            raise ValueError(f"cond is on {cond.device} but the model is on {device}")
        if weights == "float16" and (backend == "reference" or not kernels.runs_on(device)):
            raise ValueError(f"weights={weights!r} needs the fast backend (on CPU)")
        if backend != "reference" and not kernels.runs_on(device):
            # "fast" included: on a GPU the PyTorch loop is the on-device path there is
            warnings.warn(
                f"SampleRNN: the fused generation loop runs on the CPU only; this model is on {device}, "
                "so it samples with the PyTorch loop there",
                RuntimeWarning,
                stacklevel=2,
            )
        elif backend != "reference":
            from waveforge.kernels import samplernn as fast

            if fast.available():
                if weights == "auto":
                    weights = "float32" if fast.uses_packed_gemm("float32", batch_size) else "float16"
                classes = fast.generate(self, n_samples, cond, temperature, top_p, batch_size, generator, weights)
                return mu_law_decode(classes, self.config.mu_law_bits)[:, None, :]
            if backend == "fast" or weights == "float16":
                raise RuntimeError(f"the fast SampleRNN kernel is unavailable: {fast.unavailable_reason()}")
            warnings.warn(f"SampleRNN: the fused loop is unavailable ({fast.unavailable_reason()}); using the PyTorch loop", RuntimeWarning, stacklevel=2)
        state = self.new_state(batch_size, cond, n_samples)
        out = []
        for _ in _progress(range(n_samples), progress):
            x = sample_categorical(self.step(state), temperature, top_p, generator)
            self.push(state, x)
            out.append(x)
        return mu_law_decode(torch.stack(out, dim=-1), self.config.mu_law_bits)[:, None, :]


def _progress(steps, enabled: bool):
    return progress(steps, desc="samplernn", total=len(steps), unit="sample", enabled=enabled)
