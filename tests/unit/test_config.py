"""Config validation: every bad value is rejected with a message naming the key."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeface.config import Config, ConfigError, load_config, parse_config

REPO = Path(__file__).resolve().parents[2]


def test_documented_default_config_is_valid():
    cfg = load_config(REPO / "config" / "edgeface.yaml")
    assert cfg.mqtt.topic_prefix == "edgeface"


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"mqtt": {"port": "abc"}}, "mqtt.port: expected a number"),
        ({"mqtt": {"port": 70000}}, "mqtt.port: expected a value from 1 to 65535"),
        ({"mqtt": {"prot": 1}}, "mqtt.prot: unknown key"),
        (
            {"recognition": {"match_threshold": True}},
            "recognition.match_threshold: expected a number",
        ),
        ({"camera": {"loop": "yes"}}, "camera.loop: expected true or false"),
        ({"mqtt": {"protocol": "4"}}, "mqtt.protocol: expected one of 3.1.1, 5"),
        ({"mqtt": {"tls": []}}, "mqtt.tls: expected a mapping"),
        ({"device": {"id": "a/b"}}, "device.id: expected a name without"),
        (
            {"recognition": {"match_threshold": 0.4, "unknown_threshold": 0.5}},
            "recognition.unknown_threshold: expected at most",
        ),
        ([1, 2], "top level: expected a mapping"),
    ],
)
def test_bad_values_name_the_key(doc, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        parse_config(doc, "edgeface.yaml")


def test_errors_name_the_file(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("mqtt:\n  port: [1\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: not valid YAML at line"):
        load_config(bad)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")


def test_relative_paths_are_relative_to_the_file(tmp_path):
    (tmp_path / "c.yaml").write_text("gallery: {path: g}\nstate_dir: s\ncamera: {source: v.mp4}\n")
    cfg = load_config(tmp_path / "c.yaml")
    assert cfg.gallery.path == str(tmp_path / "g")
    assert cfg.state_dir == str(tmp_path / "s")
    assert cfg.camera.source == str(tmp_path / "v.mp4")


SECTIONS = [f.name for f in Config.__dataclass_fields__.values()]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.sampled_from([*SECTIONS, "bogus"]),
        st.dictionaries(st.text(max_size=20), json_values, max_size=4) | json_values,
        max_size=4,
    )
)
def test_any_document_is_accepted_or_rejected_with_a_one_line_error(doc):
    text = yaml.safe_dump(doc)
    try:
        parse_config(yaml.safe_load(text), "fuzz.yaml")
    except ConfigError as exc:
        message = str(exc)
        assert message.startswith("fuzz.yaml: ")
        assert "\n" not in message


def _number_keys(cls: type = Config, prefix: str = "") -> list[tuple[str, type]]:
    """Every numeric key of the schema, dotted, with its type (Optional unwrapped)."""
    keys = []
    for name, hint in typing.get_type_hints(cls).items():
        if typing.get_origin(hint) is tuple and typing.get_args(hint)[1:] == (Ellipsis,):
            continue  # `cameras`: a list of what `camera` holds
        options = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
        if dataclasses.is_dataclass(options[0]):
            keys += _number_keys(options[0], f"{prefix}{name}.")
        elif options[0] in (int, float):
            keys.append((f"{prefix}{name}", options[0]))
    return keys


def _doc(key: str, value: object) -> dict:
    doc: dict = {}
    *sections, last = key.split(".")
    node = doc
    for section in sections:
        node = node.setdefault(section, {})
    node[last] = value
    return doc


FLOAT_KEYS = [key for key, hint in _number_keys() if hint is float]


def test_the_schema_walk_finds_the_float_keys():
    assert {"recognition.match_threshold", "gallery.settle_seconds", "camera.fps_cap"} <= set(
        FLOAT_KEYS
    )


@pytest.mark.parametrize("key", FLOAT_KEYS)
@pytest.mark.parametrize("text", [".nan", ".inf", "-.inf"])
def test_nan_and_infinity_are_refused_naming_the_key(key, text):
    # Through YAML as a user writes it: `match_threshold: .nan` used to pass and recognise nobody.
    document = yaml.safe_dump(_doc(key, 0.5)).replace("0.5", text)
    with pytest.raises(ConfigError) as err:
        parse_config(yaml.safe_load(document), "c.yaml")
    message = str(err.value)
    assert message.startswith(f"c.yaml: {key}: expected a value from ") and "\n" not in message


def test_decision_settings_follow_the_embedder_unless_the_file_sets_them():
    from edgeface.config import Config, parse_config, with_embedder
    from edgeface.models import load_manifest

    manifest = load_manifest()
    default = manifest.get(manifest.defaults["embedder"]).operating_point
    casia = manifest.get("facenet-dynamic").operating_point
    assert default is not None and casia is not None and default != casia
    # the dataclass literals are the default model's point (Config() is used without a file)
    rec = Config().recognition
    assert (rec.match_threshold, rec.unknown_threshold, rec.ambiguity_margin) == (
        default.match,
        default.unknown,
        default.margin,
    )
    assert Config().models.embedder == manifest.defaults["embedder"]
    other = parse_config({"models": {"embedder": "facenet-dynamic"}}).recognition
    assert (other.match_threshold, other.unknown_threshold) == (casia.match, casia.unknown)
    mine = parse_config(
        {"models": {"embedder": "facenet-dynamic"}, "recognition": {"match_threshold": 0.7}}
    ).recognition
    assert mine.match_threshold == 0.7 and mine.unknown_threshold <= 0.7
    # switching models (eval --model a,b) carries the followed settings along, not chosen ones
    switched = with_embedder(Config(), "facenet-dynamic").recognition
    assert switched.match_threshold == casia.match
    chosen = with_embedder(
        parse_config({"recognition": {"match_threshold": 0.7}}), "facenet-dynamic"
    )
    assert chosen.recognition.match_threshold == 0.7
