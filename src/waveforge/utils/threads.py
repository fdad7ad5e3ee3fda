"""How many intra-op threads a command uses.

PyTorch starts one thread per core. On a machine whose cores are busy with other work, each op's
barrier then waits for a descheduled thread, and a multi-threaded run can take several times as
long as a single-threaded one (docs/architecture.md). The default therefore counts the cores that
are actually free: the cores this process may run on, less the one-minute load average, and at
least one. ``--threads N`` or ``WAVEFORGE_THREADS=N`` fixes the number; an explicit
``OMP_NUM_THREADS`` is left to PyTorch.
"""

from __future__ import annotations

import math
import os

from waveforge.errors import BadInputError

THREADS_ENV = "WAVEFORGE_THREADS"


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def free_cores(cores: int | None = None, load: float | None = None) -> int:
    """Cores not already busy: ``cores - floor(load)``, between 1 and ``cores``."""
    cores = available_cores() if cores is None else cores
    if load is None:
        try:
            load = os.getloadavg()[0]
        except OSError:
            return cores
    return max(1, min(cores, cores - math.floor(load)))


def choose_threads(requested: int | None = None) -> int | None:
    """The thread count to use: ``requested``, else ``$WAVEFORGE_THREADS``, else None when
    ``OMP_NUM_THREADS`` is set (PyTorch already follows it), else :func:`free_cores`."""
    if requested is None and os.environ.get(THREADS_ENV):
        value = os.environ[THREADS_ENV]
        try:
            requested = int(value)
        except ValueError:
            raise BadInputError(None, f"{THREADS_ENV}={value!r} is not a whole number") from None
    if requested is not None:
        if requested < 1:
            raise BadInputError(None, f"--threads must be at least 1, got {requested}")
        return requested
    if os.environ.get("OMP_NUM_THREADS"):
        return None
    return free_cores()


def apply_threads(requested: int | None = None) -> int:
    import torch

    threads = choose_threads(requested)
    if threads is not None:
        torch.set_num_threads(threads)
    return torch.get_num_threads()
