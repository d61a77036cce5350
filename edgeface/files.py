"""Reading a file the user named, without ever blocking on something that is not a file.

Owns: refusing, with one line naming the path, what is missing, a folder, or not a regular
file (a FIFO would block the reader forever, a device could stream without end) before it is
read, reading regular files with a size bound, and making a private directory (0700) for what the
daemon keeps. Never: interprets the bytes.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from edgeface.errors import EdgefaceError

_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def require_regular_file(path: Path, what: str = "file") -> os.stat_result:
    """Stat `path` (following symlinks) and raise a one-line error unless it is a regular file."""
    try:
        st = path.stat()
    except FileNotFoundError as exc:
        raise EdgefaceError(f"{path}: no such file") from exc
    except OSError as exc:
        raise EdgefaceError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    if stat.S_ISDIR(st.st_mode):
        raise EdgefaceError(f"{path}: is a directory, expected {what}")
    if not stat.S_ISREG(st.st_mode):
        raise EdgefaceError(f"{path}: is {_kind(st.st_mode)}, expected {what}")
    return st


def read_regular_file(path: Path, max_bytes: int, what: str = "file") -> bytes:
    """The bytes of a regular file of at most `max_bytes`, or a one-line EdgefaceError.

    The type is checked before opening, and again on the opened descriptor (opened
    non-blocking), so a path swapped for a FIFO in between cannot block the read either.
    """
    require_regular_file(path, what)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise EdgefaceError(f"{path}: no such file") from exc
    except OSError as exc:
        raise EdgefaceError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise EdgefaceError(f"{path}: is {_kind(st.st_mode)}, expected {what}")
        try:
            data = fh.read(max_bytes + 1) if st.st_size <= max_bytes else b""
        except OSError as exc:
            raise EdgefaceError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    if st.st_size > max_bytes or len(data) > max_bytes:
        raise EdgefaceError(f"{path}: larger than {max_bytes} bytes allowed")
    return data


def make_private_dir(path: Path) -> None:
    """`path` as a directory only its owner can enter (made, or its mode corrected); OSError
    when the disk is read-only or full."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.stat().st_mode & 0o777 != 0o700:
        path.chmod(0o700)
