"""Atomic file output: write beside the target, then rename, so no reader sees half a file.

The temporary file lives in the target's own folder (never ``$TMPDIR``, which may be another
filesystem: a rename there is a copy that a kill can cut short) and is named
``.<stem>.<pid>.<random>.tmp<suffix>``; a temporary left by a process that no longer runs
(SIGKILL, power loss) is swept by the next write of the same target.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
from pathlib import Path
from typing import Iterator

from waveforge.errors import BadInputError


def _temp_pattern(target: Path) -> re.Pattern:
    return re.compile(rf"^\.{re.escape(target.stem)}\.(\d+)\.[^.]+\.tmp{re.escape(target.suffix)}$")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def sweep_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Remove temporaries of ``path`` left by processes that are gone; returns what was removed."""
    target = Path(path)
    pattern = _temp_pattern(target)
    removed = []
    try:
        entries = list(target.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = pattern.match(entry.name)
        if m and not _pid_alive(int(m.group(1))):
            with contextlib.suppress(OSError):
                entry.unlink()
                removed.append(entry)
    return removed


def check_output_path(path: str | os.PathLike, overwrite: bool = True) -> Path:
    """Check, before any work, that ``path`` can be written: its folder exists or can be made, is a
    folder and is writable, ``path`` is not a folder, and (unless ``overwrite``) does not exist.
    Raises :class:`BadInputError` naming the path."""
    target = Path(path)
    if target.is_dir():
        raise BadInputError(target, "is a folder; give a file name")
    if target.exists() and not overwrite:
        raise BadInputError(target, "already exists (pass --overwrite to replace it)")
    parent = target.parent
    for above in [parent, *parent.parents]:
        if above.exists():
            if not above.is_dir():
                raise BadInputError(target, f"cannot be created: {above} is a file, not a folder")
            break
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{target.stem}.{os.getpid()}.", suffix=f".tmp{target.suffix}", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise BadInputError(target, f"cannot write here ({e.strerror or e})") from None
    return target


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success it replaces ``path``.

    The temporary name keeps the target's suffix so libraries that infer the format from it
    (soundfile, matplotlib) still work. On any exception the temporary file is removed and
    ``path`` is left as it was. With ``overwrite=False`` the file is put in place with a hard link,
    which fails if ``path`` exists by then: of two writers of one name, the second fails with
    :class:`BadInputError` instead of replacing the first's result. A full disk or an unwritable
    folder is a :class:`BadInputError` too.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        sweep_stale_temps(target)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.stem}.{os.getpid()}.", suffix=f".tmp{target.suffix}", dir=target.parent)
    except OSError as e:
        raise BadInputError(target, f"cannot write here ({e.strerror or e})") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        try:
            yield tmp
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG):
                raise BadInputError(target, f"writing failed ({e.strerror or e})") from None
            raise
        # mkstemp creates 0600; give the file the permissions a plain open() would have
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        if overwrite:
            os.replace(tmp, target)
        else:
            try:
                os.link(tmp, target)
            except FileExistsError:
                raise BadInputError(target, "already exists (another writer got there first; pass --overwrite to replace it)") from None
            tmp.unlink()
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
