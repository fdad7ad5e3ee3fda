import os

import pytest
import torch

# Two cores in CI: keep intra-op threads modest so parallel processes (DDP tests) don't thrash.
torch.set_num_threads(min(2, os.cpu_count() or 1))


def require_kernel(kernel) -> None:
    """Skip a test of a numba kernel where numba is missing, except under CI (``CI`` set), where a
    missing kernel is a broken install and the test fails instead of skipping silently."""
    if kernel.available():
        return
    if os.environ.get("CI"):
        pytest.fail(f"{kernel.__name__} is unavailable under CI: {kernel.unavailable_reason()}")
    pytest.skip(kernel.unavailable_reason())


@pytest.fixture
def rng():
    return torch.Generator().manual_seed(0)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    """A small MAESTRO-layout corpus at 22.05 kHz (procedural pieces, ~40 s in all), built once."""
    from waveforge.data.synth import SynthConfig, build_corpus

    root = tmp_path_factory.mktemp("corpus")
    build_corpus(root, SynthConfig(minutes=0.7, seed=3, sample_rate=22050, use_real=False, min_piece_seconds=5.0, max_piece_seconds=10.0), progress=False)
    return root


@pytest.fixture
def one_thread():
    """Tiny models gain nothing from intra-op threads, and on a loaded 2-core machine each op's
    barrier waits for a descheduled thread; run with one thread, then restore."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
