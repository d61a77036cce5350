"""Logging setup for the daemon and the CLI: journald when under systemd, stderr otherwise.

Owns: the root logger's handlers and level, the journal field mapping (SYSLOG_IDENTIFIER and
`extra={...}` fields as upper-case journal fields) and secret redaction (`SecretFilter`).
Never: keeps module-level mutable state (the registered secrets live on the filter instance
attached to the handlers), or lets a registered secret reach a handler - not in the message,
its args, an exception text or an extra field.
"""

from __future__ import annotations

import logging
import os
import re
import sys

IDENTIFIER = "edgeface"
REDACTED = "***"
_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
_DATEFMT = "%Y-%m-%d %H:%M:%S"
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
_LEVELS |= {"error": logging.ERROR, "critical": logging.CRITICAL}

# Attributes every LogRecord has; anything else on a record came from `extra={...}`.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
}
_JOURNAL_FIELD = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")


class SecretFilter(logging.Filter):
    """Replaces registered secret strings with `***` in everything a handler could output.

    Attach one instance to every handler (handler filters also see records propagated from
    child loggers; logger filters would not). The record is rewritten in place: the message is
    formatted once and its args dropped, because journald's handler would otherwise also ship
    `str(record.args)` as CODE_ARGS.
    """

    def __init__(self) -> None:
        super().__init__()
        self._secrets: tuple[str, ...] = ()

    def add_secret(self, value: str | None) -> None:
        # Very short values would redact ordinary words ("a", "on"): an MQTT password that
        # short is a configuration problem, not something to mask by mangling every message.
        if value and len(value) >= 3 and value not in self._secrets:
            # Longest first so a secret containing another is replaced whole.
            self._secrets = tuple(sorted((*self._secrets, value), key=len, reverse=True))

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: let the handler report it as usual
            return True
        record.msg = self.redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
            # Formatters print exc_text when present; exc_info itself would be str()-ed by
            # the journal handler into EXCEPTION_INFO, unredacted.
            record.exc_info = None
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD_ATTRS and isinstance(value, str):
                setattr(record, key, self.redact(value))
        return True


class _JournalFields(logging.Filter):
    """Copies `extra={...}` fields to upper-case attributes, which journald keeps as fields.

    The journal handler sends every record attribute; journald silently drops names that are
    not upper-case, so `extra={"person": "ada"}` only becomes PERSON=ada through this.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in list(vars(record).items()):
            if key in _STANDARD_ATTRS or key.isupper():
                continue
            field = re.sub(r"[^A-Z0-9_]", "_", key.upper()).lstrip("_")
            if _JOURNAL_FIELD.match(field) and not hasattr(record, field):
                setattr(record, field, value if isinstance(value, str | bytes) else str(value))
        return True


def _journal_handler() -> logging.Handler | None:
    """A JournalHandler when stderr is connected to journald and systemd-python is installed."""
    if not os.environ.get("JOURNAL_STREAM"):
        return None
    try:
        from systemd import journal  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    handler: logging.Handler = journal.JournalHandler(SYSLOG_IDENTIFIER=IDENTIFIER)
    # journald stamps time, priority and identifier itself.
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    handler.addFilter(_JournalFields())
    return handler


class _PriorityPrefixFormatter(logging.Formatter):
    """`<3>name: message`: journald reads the syslog priority prefix off a stderr stream."""

    def format(self, record: logging.LogRecord) -> str:
        level = record.levelno
        priority = 7 if level <= logging.DEBUG else 6 if level <= logging.INFO else 4
        priority = 3 if level >= logging.ERROR else priority
        priority = 2 if level >= logging.CRITICAL else priority
        text = super().format(record)
        # Every line, or a traceback's lines after the first would lose the priority.
        return "\n".join(f"<{priority}>{line}" for line in text.splitlines())


def _stderr_is_journal() -> bool:
    """JOURNAL_STREAM names the journal socket as dev:inode; true if fd 2 is that socket."""
    value = os.environ.get("JOURNAL_STREAM", "")
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return value == f"{st.st_dev}:{st.st_ino}"


def setup_logging(level: str, force_stderr: bool = False) -> SecretFilter:
    """Replace the root logger's handlers; returns the filter to register secrets with.

    `level` is a config value (debug/info/warning/error, any case). Calling it again (a
    reload) replaces the handlers but keeps the secrets already registered.
    """
    try:
        numeric = _LEVELS[level.lower()]
    except KeyError:
        raise ValueError(f"unknown log level {level!r} (expected {', '.join(_LEVELS)})") from None
    root = logging.getLogger()
    secrets = _find_filter(root) or SecretFilter()
    handler = None if force_stderr else _journal_handler()
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        if not force_stderr and _stderr_is_journal():
            # Under systemd without systemd-python: journald stamps the time itself.
            handler.setFormatter(_PriorityPrefixFormatter("%(name)s: %(message)s"))
        else:
            handler.setFormatter(logging.Formatter(_FORMAT, _DATEFMT))
    # Redaction first: the journal field filter must copy already-redacted extras.
    handler.filters.insert(0, secrets)
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(numeric)
    return secrets


def add_secret(value: str | None, logger: logging.Logger | None = None) -> None:
    """Register a string that must never reach a log, on every handler set up above."""
    target = logger or logging.getLogger()
    found = False
    for handler in target.handlers:
        for f in handler.filters:
            if isinstance(f, SecretFilter):
                f.add_secret(value)
                found = True
    if not found and value:
        # Logging was not set up through setup_logging: protect the existing handlers anyway.
        secrets = SecretFilter()
        secrets.add_secret(value)
        for handler in target.handlers:
            handler.filters.insert(0, secrets)


def _find_filter(logger: logging.Logger) -> SecretFilter | None:
    for handler in logger.handlers:
        for f in handler.filters:
            if isinstance(f, SecretFilter):
                return f
    return None
