"""`cameras:` in the config: a list of cameras for one daemon; `camera:` stays a list of one."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from edgeface.config import Config, ConfigError, load_config, parse_config
from edgeface.preflight import describe_cameras


def test_one_camera_is_a_list_of_one() -> None:
    cfg = parse_config({"camera": {"source": "a.avi", "name": "door"}})
    assert [c.name for c in cfg.all_cameras] == ["door"]
    assert Config().all_cameras == (Config().camera,)
    assert describe_cameras(cfg) == ["camera: door <- a.avi"]


def test_a_list_of_cameras_each_with_its_own_settings() -> None:
    cfg = parse_config(
        {
            "detection": {"tiles": "auto", "tile_size": 320},
            "cameras": [
                {"source": "a.avi", "name": "door"},
                {
                    "source": "rtsp://user:secret@cam/stream",
                    "name": "garage",
                    "roi": [0, 0, 0.5, 1],
                    "detection": {"tiles": "on"},
                },
            ],
        }
    )
    door, garage = cfg.all_cameras
    assert cfg.camera == door  # code that reads `camera` sees the first
    assert cfg.detection_for(door).tiles == "auto"
    # a camera names only what it changes; the rest comes from the top-level detection
    assert cfg.detection_for(garage).tiles == "on"
    assert cfg.detection_for(garage).tile_size == 320
    assert garage.roi == (0, 0, 0.5, 1) and door.roi is None
    lines = describe_cameras(cfg)
    assert lines[0].startswith("cameras: 2 in one daemon")
    assert lines[2] == (
        "cameras[1]: garage <- rtsp://***@cam/stream (roi [0, 0, 0.5, 1], tiles on (blazeface-short))"
    )
    assert "secret" not in "\n".join(lines)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (
            {"camera": {"name": "a"}, "cameras": [{"name": "b"}]},
            "cameras: expected either camera (one) or cameras (a list), not both",
        ),
        ({"cameras": []}, "cameras: expected a non-empty list, got []"),
        ({"cameras": {"name": "a"}}, "cameras: expected a non-empty list"),
        ({"cameras": [{"name": "a"}, {"nmae": "b"}]}, "cameras[1].nmae: unknown key"),
        ({"cameras": [{"name": "a"}, {"fps_cap": 0}]}, "cameras[1].fps_cap: expected a value"),
        (
            {"cameras": [{"name": "a"}, {"name": "a"}]},
            "cameras[1].name: 'a' is already the name of cameras[0]",
        ),
        (
            {"cameras": [{"name": "a"}, {"name": "b", "roi": [0.5, 0, 0.6, 1]}]},
            "cameras[1].roi: as fractions of the frame",
        ),
        ({"camera": {"roi": [0, 0, 0, 1]}}, "camera.roi: expected a width and height above 0"),
    ],
)
def test_bad_cameras_are_refused_naming_the_key(doc: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(doc, "c.yaml")
    assert str(err.value).startswith(f"c.yaml: {message}"), str(err.value)


def test_relative_sources_are_relative_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        yaml.safe_dump(
            {"cameras": [{"source": "a.avi", "name": "a"}, {"source": "0", "name": "usb"}]}
        )
    )
    cfg = load_config(path)
    assert [c.source for c in cfg.all_cameras] == [str(tmp_path / "a.avi"), "0"]
    assert cfg.camera.source == str(tmp_path / "a.avi")
