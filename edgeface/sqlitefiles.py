"""Telling a damaged sqlite file from a sqlite file we merely cannot write right now.

Owns: the one rule both on-disk stores (outbox, embedding cache) use before moving a file aside.
Never: opens or moves files itself.
"""

from __future__ import annotations

import sqlite3

# SQLITE_CORRUPT and SQLITE_NOTADB: the file's content is bad. Anything else (SQLITE_FULL,
# SQLITE_READONLY, SQLITE_CANTOPEN, SQLITE_IOERR) says nothing about the content, and moving a
# healthy file aside would throw its rows away for nothing.
_DAMAGE_CODES = (11, 26)


class DamagedError(sqlite3.DatabaseError):
    """The file opened but is not a healthy database of ours (failed check, unknown schema)."""


def is_damage(exc: sqlite3.Error) -> bool:
    if isinstance(exc, DamagedError):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in _DAMAGE_CODES
    return type(exc) is sqlite3.DatabaseError
