"""Broker-free tests of the publish package's pure parts: slugs, command validation, schema."""

from __future__ import annotations

import json
import re
import socket
import ssl
from pathlib import Path
from typing import Any

import pytest

from edgeface.commands import MAX_COMMAND_BYTES, execute, json_depth_exceeds
from edgeface.config import ConfigError, MqttConfig
from edgeface.publish.client import describe_connect_error
from edgeface.publish.mqtt import MqttPublisher, slugify
from edgeface.publish.schema import EventSchemaError, validate_event
from edgeface.types import Box, Event, RunnerUp


@pytest.mark.parametrize("name", ["alice", "bob_2", "x"])
def test_slug_of_a_slug_is_itself(name: str) -> None:
    assert slugify(name) == name


@pytest.mark.parametrize(
    ("a", "b"),
    [("Zoë", "Zoe"), ("Ann Lee", "ann_lee"), ("Ann", "ann"), ("王芳", "李娜"), ("a/b", "a+b")],
)
def test_distinct_names_give_distinct_topic_safe_slugs(a: str, b: str) -> None:
    sa, sb = slugify(a), slugify(b)
    assert sa != sb
    for s in (sa, sb):
        assert re.fullmatch(r"[a-z0-9_]{1,49}", s), s


def test_slug_is_readable_and_stable() -> None:
    assert slugify("Zoë Ångström").startswith("zoe_angstrom_")
    assert slugify("Zoë Ångström") == slugify("Zoë Ångström")
    assert slugify("王芳").startswith("person_")
    assert len(slugify("x" * 500 + "!")) <= 49


def test_depth_scan_ignores_brackets_inside_strings() -> None:
    assert not json_depth_exceeds('{"a": "[[[[[[[[[[[[[[[[[[[[\\"[["}', 2)
    assert json_depth_exceeds('{"a": [[[1]]]}', 3)
    assert not json_depth_exceeds('{"a": [[1]]}', 3)


def test_connect_error_reasons() -> None:
    verify = ssl.SSLCertVerificationError(1, "certificate verify failed")
    verify.verify_message = "self-signed certificate"
    assert describe_connect_error(verify, "h", 1) == (
        "TLS: certificate verify failed (self-signed certificate)"
    )
    assert "refused" in describe_connect_error(ConnectionRefusedError(111, "x"), "h", 1)
    assert "resolve" in describe_connect_error(socket.gaierror(-2, "Name unknown"), "nohost", 1)
    assert "h:1" in describe_connect_error(None, "h", 1)


def test_command_validation_without_a_broker() -> None:
    seen: list[str] = []
    actions = {"reload": lambda: seen.append("reload") or {"n": len(seen)}}

    ok = execute(actions, "reload", b"")
    assert ok == {"ok": True, "command": "reload", "result": {"n": 1}}
    assert execute(actions, "reload", b'  {"request_id": "abc"} ')["request_id"] == "abc"
    for name, payload in [
        ("reload", b"x" * (MAX_COMMAND_BYTES + 1)),
        ("reload", b"\xc3\x28"),
        ("reload", b"[" * 10_000),
        ("reload", b"null"),
        ("reload", b"{"),
        ("result", b"{}"),
        ("UPPER", b"{}"),
        ("", b"{}"),
    ]:
        reply = execute(actions, name, payload)
        assert reply["ok"] is False and reply["error"], (name, reply)
        json.dumps(reply)
    assert len(seen) == 2


def test_refused_command_is_not_ok_and_any_request_id_comes_back() -> None:
    actions = {"snapshot": lambda: {"ok": False, "error": "no frame yet"}}
    reply = execute(actions, "snapshot", b'{"request_id": 7}')
    assert reply["ok"] is False and reply["error"] == "no frame yet" and reply["request_id"] == 7
    long_id = "x" * 500
    reply = execute(actions, "snapshot", json.dumps({"request_id": long_id}).encode())
    assert reply["request_id"] == long_id


def test_no_action_means_unknown_command() -> None:
    assert execute({}, "reload", b"{}")["error"] == "unknown command"


def test_action_non_json_result_is_an_error() -> None:
    assert "not JSON" in execute({"reload": lambda: {"x": object()}}, "reload", b"{}")["error"]


def test_password_without_username_is_refused_without_echo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGEFACE_TEST_PW", "hunter2-secret")
    cfg = MqttConfig(password_env="EDGEFACE_TEST_PW")
    with pytest.raises(ConfigError) as err:
        MqttPublisher(cfg, "dev", tmp_path)
    assert "hunter2" not in str(err.value)


def test_missing_tls_file_names_the_key(tmp_path: Path) -> None:
    from edgeface.config import TlsConfig

    cfg = MqttConfig(tls=TlsConfig(enabled=True, ca_file=str(tmp_path / "missing.crt")))
    with pytest.raises(ConfigError, match=r"mqtt\.tls\.ca_file"):
        MqttPublisher(cfg, "dev", tmp_path)


def test_bad_device_id_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        MqttPublisher(MqttConfig(), "a/b", tmp_path)


def _event(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = dict(
        id="e1",
        type="recognized",
        track_id=3,
        person="Ann",
        score=0.81234,
        runner_up=RunnerUp("Bob", 0.5),
        box=Box(1.4, 2.6, 30, 40),
        camera="cam",
        device="dev",
        ts=1700000000.12345,
        model="facenet",
    )
    base.update(kw)
    return Event(**base).to_dict()


def test_schema_accepts_every_event_kind() -> None:
    validate_event(_event())
    validate_event(_event(type="unknown", person=None, runner_up=None))
    validate_event(_event(type="left", duration=12.5))
    validate_event(_event(extra={"future_field": 1}))  # minor versions may add fields


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"type": "waved"}, "type"),
        ({"box": [1, 2, 3]}, "box"),
        ({"box": [1.5, 2, 3, 4]}, "box"),
        ({"runner_up": {"person": "x"}}, "runner_up"),
        ({"duration": 3.0}, "type"),
        ({"person": 5}, "person"),
        ({"id": ""}, "id"),
    ],
)
def test_schema_rejects_bad_payloads(change: dict[str, Any], where: str) -> None:
    payload = _event()
    payload.update(change)
    with pytest.raises(EventSchemaError, match=where):
        validate_event(payload)


def test_schema_requires_every_core_field() -> None:
    for key in _event():
        payload = _event()
        del payload[key]
        with pytest.raises(EventSchemaError):
            validate_event(payload)
