"""Config validation: every bad value is rejected with a message naming the key."""

from __future__ import annotations

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
