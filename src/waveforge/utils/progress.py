"""Progress bars for long work (tqdm), quiet when output is not a terminal unless asked."""

from __future__ import annotations

import sys
from typing import Iterable, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress(items: Iterable[T], desc: str, total: int | None = None, unit: str = "it", enabled: bool = True) -> Iterable[T]:
    """Wrap ``items`` in a tqdm bar on stderr; shown only when stderr is a terminal (``disable=None``),
    so logs and error output stay clean."""
    return tqdm(items, desc=desc, total=total, unit=unit, disable=None if enabled else True, file=sys.stderr, dynamic_ncols=True, leave=False)
