"""setup_logging: stderr vs journal handler choice, journal fields, and secret redaction."""

from __future__ import annotations

import io
import logging
import os
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from edgeface.logsetup import SecretFilter, add_secret, setup_logging

PASSWORD = "hunter2-very-secret"


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


class Stderr:
    """What the handler wrote; setup_logging binds sys.stderr, which capsys owns in a test."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self._capsys = capsys

    def getvalue(self) -> str:
        return self._capsys.readouterr().err


@pytest.fixture
def stderr(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Stderr:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    return Stderr(capsys)


class FakeJournalHandler(logging.Handler):
    """Mirrors systemd-python's JournalHandler.emit: every record attribute becomes a field."""

    sent: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, level: int = logging.NOTSET, **kwargs: Any) -> None:
        super().__init__(level)
        self._extra = kwargs

    def emit(self, record: logging.LogRecord) -> None:
        fields = dict(self._extra)
        if record.exc_text:
            fields["EXCEPTION_TEXT"] = record.exc_text
        if record.exc_info:
            fields["EXCEPTION_INFO"] = str(record.exc_info)
        if record.args:
            fields["CODE_ARGS"] = str(record.args)
        fields.update(vars(record))
        fields["MESSAGE"] = self.format(record)
        # journald drops field names that are not upper case.
        self.sent.append({k: v for k, v in fields.items() if k.isupper()})


@pytest.fixture
def fake_journal(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    package = types.ModuleType("systemd")
    journal = types.ModuleType("systemd.journal")
    journal.JournalHandler = FakeJournalHandler  # type: ignore[attr-defined]
    package.journal = journal  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "systemd", package)
    monkeypatch.setitem(sys.modules, "systemd.journal", journal)
    monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    FakeJournalHandler.sent = []
    return FakeJournalHandler.sent


def test_stderr_format_is_compact(stderr: Stderr) -> None:
    setup_logging("info")
    logging.getLogger("edgeface.camera").info("opened %s", "/dev/video0")
    logging.getLogger("edgeface.camera").debug("not shown")
    out = stderr.getvalue()
    assert out.strip().endswith("INFO    edgeface.camera: opened /dev/video0")
    assert len(out.splitlines()) == 1


def test_unknown_level_is_an_error() -> None:
    with pytest.raises(ValueError, match="loud"):
        setup_logging("loud")


def test_level_is_case_insensitive(stderr: Stderr) -> None:
    setup_logging("DEBUG")
    assert logging.getLogger().level == logging.DEBUG


def test_secret_redacted_in_message_and_args(stderr: Stderr) -> None:
    secrets = setup_logging("info")
    secrets.add_secret(PASSWORD)
    log = logging.getLogger("edgeface.publish")
    log.info("connecting with password %s", PASSWORD)
    log.info(f"literal {PASSWORD} in the message")
    log.info("as a mapping: %(pw)s", {"pw": PASSWORD})
    out = stderr.getvalue()
    assert PASSWORD not in out
    assert out.count("***") == 3


def test_secret_redacted_in_tracebacks_and_extras(stderr: Stderr) -> None:
    setup_logging("info")
    add_secret(PASSWORD)
    log = logging.getLogger("edgeface.publish")
    try:
        raise ConnectionError(f"auth failed for mqtt://user:{PASSWORD}@broker")
    except ConnectionError:
        log.exception("broker said no", extra={"url": f"mqtt://user:{PASSWORD}@broker"})
    out = stderr.getvalue()
    assert PASSWORD not in out
    assert "auth failed for mqtt://user:***@broker" in out
    assert "Traceback" in out


def test_secrets_survive_a_second_setup(stderr: Stderr) -> None:
    setup_logging("info")
    add_secret(PASSWORD)
    setup_logging("debug")  # SIGHUP reload
    logging.getLogger("x").debug("pw=%s", PASSWORD)
    assert PASSWORD not in stderr.getvalue()
    assert len(logging.getLogger().handlers) == 1


def test_add_secret_protects_handlers_not_set_up_here() -> None:
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    log = logging.getLogger("edgeface.test.foreign")
    log.addHandler(handler)
    log.propagate = False
    try:
        add_secret(PASSWORD, logger=log)
        log.warning("pw=%s", PASSWORD)
    finally:
        log.removeHandler(handler)
    assert buf.getvalue().strip() == "pw=***"


def test_short_or_empty_secrets_are_ignored() -> None:
    f = SecretFilter()
    for value in (None, "", "ab"):
        f.add_secret(value)
    assert f.redact("a b ab") == "a b ab"


def test_overlapping_secrets_redact_the_longest_whole() -> None:
    f = SecretFilter()
    f.add_secret("secret")
    f.add_secret("secret-and-more")
    assert f.redact("x secret-and-more y secret") == "x *** y ***"


def test_journal_is_used_under_systemd(fake_journal: list[dict[str, Any]]) -> None:
    setup_logging("info")
    assert isinstance(logging.getLogger().handlers[0], FakeJournalHandler)


def test_force_stderr_ignores_the_journal(
    fake_journal: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging("info", force_stderr=True)
    logging.getLogger("edgeface").info("hello")
    assert fake_journal == []
    assert "hello" in capsys.readouterr().err


def test_no_journal_stream_means_stderr(
    fake_journal: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JOURNAL_STREAM")
    setup_logging("info")
    assert isinstance(logging.getLogger().handlers[0], logging.StreamHandler)


def test_journal_gets_identifier_and_uppercased_extras(
    fake_journal: list[dict[str, Any]],
) -> None:
    secrets = setup_logging("info")
    secrets.add_secret(PASSWORD)
    log = logging.getLogger("edgeface.events")
    log.info(
        "recognised %s (pw %s)",
        "ada",
        PASSWORD,
        extra={"person": "ada", "track_id": 7, "detail": f"pw={PASSWORD}"},
    )
    (entry,) = fake_journal
    assert entry["SYSLOG_IDENTIFIER"] == "edgeface"
    assert entry["PERSON"] == "ada"
    assert entry["TRACK_ID"] == "7"
    assert entry["MESSAGE"] == "edgeface.events: recognised ada (pw ***)"
    assert "CODE_ARGS" not in entry  # args were folded into the redacted message
    assert all(PASSWORD not in str(v) for v in entry.values())


def test_journal_exception_fields_are_redacted(fake_journal: list[dict[str, Any]]) -> None:
    setup_logging("info")
    add_secret(PASSWORD)
    try:
        raise RuntimeError(PASSWORD)
    except RuntimeError:
        logging.getLogger("edgeface").exception("failed")
    (entry,) = fake_journal
    assert "EXCEPTION_INFO" not in entry
    assert "RuntimeError: ***" in entry["EXCEPTION_TEXT"]
    assert all(PASSWORD not in str(v) for v in entry.values())


def test_journal_stream_without_systemd_python_uses_priority_prefixes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "systemd", None)  # import fails like when not installed
    out = (tmp_path / "stderr").open("w+")
    st = os.fstat(out.fileno())
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
    monkeypatch.setattr(sys, "stderr", out)
    setup_logging("info")
    add_secret(PASSWORD)
    log = logging.getLogger("edgeface.publish")
    log.warning("broker refused %s", PASSWORD)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("publish failed")
    out.flush()
    lines = (tmp_path / "stderr").read_text().splitlines()
    assert lines[0] == "<4>edgeface.publish: broker refused ***"
    assert lines[1] == "<3>edgeface.publish: publish failed"
    assert all(line.startswith("<3>") for line in lines[1:])
    assert lines[-1] == "<3>RuntimeError: boom"
