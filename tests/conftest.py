import os

import pytest
import torch

# Two cores in CI: keep intra-op threads modest so parallel processes (DDP tests) don't thrash.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def rng():
    return torch.Generator().manual_seed(0)
