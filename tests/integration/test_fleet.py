"""Three real daemons on one mosquitto: everything stays under its own device id.

Each daemon is `python -m edgeface run` on its own looping video (composed from the faces
scikit-image ships). dev1 and dev2 have galleries with the same files (separate copies), dev3 a
different gallery, so the retained status shows which devices are in step. One device is then
SIGKILLed (its LWT must mark only that one offline) and the others stopped with SIGTERM.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
import yaml

from edgeface.errors import EdgefaceError
from edgeface.publish.mqtt import slugify
from edgeface.publish.schema import validate_event
from edgeface.samples import (
    Appearance,
    compose_video,
    enrollment_photos,
    head_patch,
    packaged_faces,
)

DEVICES = ("dev1", "dev2", "dev3")


@pytest.fixture(scope="module")
def fleet_files(tmp_path_factory, analyzer):
    try:
        faces = packaged_faces()
    except EdgefaceError as exc:
        pytest.skip(str(exc))
    root = tmp_path_factory.mktemp("fleet")
    central = root / "central"
    (central / faces.person).mkdir(parents=True)
    for n, photo in enumerate(enrollment_photos(faces.person_photo)):
        cv2.imwrite(str(central / faces.person / f"{n}.jpg"), photo)
    box = analyzer.detect(faces.person_photo)[0].box
    her = head_patch(faces.person_photo, (box.x, box.y, box.w, box.h), 1.9, 160)
    videos = {}
    for name, patch in (("her", cv2.flip(her, 1)), ("stranger", faces.strangers[1])):
        videos[name] = root / f"{name}.avi"
        compose_video(
            videos[name],
            [Appearance(patch, 0.2, 1.8, (60, 90), (200, 100))],
            duration=3.0,
            fps=8,
        )
    return root, central, videos, faces.person


def start(root: Path, device: str, gallery: Path, video: Path, port: int) -> subprocess.Popen:
    config = root / f"{device}.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "device": {"id": device, "name": f"Camera {device}"},
                "camera": {"source": str(video), "name": "door", "fps_cap": 8, "loop": True},
                "gallery": {"path": str(gallery), "settle_seconds": 0},
                "state_dir": str(root / f"{device}-state"),
                "runtime": {"num_threads": 1},
                "mqtt": {"port": port, "status_interval": 1},
            }
        )
    )
    return subprocess.Popen(
        [sys.executable, "-m", "edgeface", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_three_devices_stay_separate_and_report_their_gallery_version(
    fleet_files, tmp_path, mosquitto, recorder_factory
):
    _, central, videos, person = fleet_files
    galleries = {}
    for device in DEVICES:
        galleries[device] = tmp_path / f"{device}-gallery"
        shutil.copytree(central, galleries[device])
    # dev3 is out of step: one photo fewer than the central gallery
    (galleries["dev3"] / person / "2.jpg").unlink()
    sources = {"dev1": videos["her"], "dev2": videos["stranger"], "dev3": videos["her"]}
    recorder = recorder_factory(mosquitto, "edgeface/#")
    procs = {d: start(tmp_path, d, galleries[d], sources[d], mosquitto.port) for d in DEVICES}
    try:

        def events(device: str) -> list[dict]:
            return [json.loads(p) for p in recorder.payloads(f"edgeface/{device}/events")]

        def statuses(device: str) -> list[dict]:
            return [json.loads(p) for p in recorder.payloads(f"edgeface/{device}/status") if p]

        recorder.wait_until(
            lambda: all(
                any(e["type"] == "left" for e in events(d)) and statuses(d) for d in DEVICES
            ),
            timeout=90,
            what="a whole visit (decision and left) and a status from every device",
        )
        for device in DEVICES:
            assert recorder.payloads(f"edgeface/{device}/availability")[0] == b"online"
            for event in events(device):
                validate_event(event)
                assert event["device"] == device
        assert {(e["type"], e["person"]) for e in events("dev1")} == {
            ("recognized", person),
            ("left", person),
        }
        assert {(e["type"], e["person"]) for e in events("dev2")} == {
            ("unknown", None),
            ("left", None),
        }
        assert ("recognized", person) in {(e["type"], e["person"]) for e in events("dev3")}
        presence = {  # every device says who is enrolled; only two saw her
            m.topic
            for m in recorder.messages
            if "/presence/" in m.topic and m.payload and json.loads(m.payload)["present"]
        }
        assert presence == {
            f"edgeface/dev1/presence/{slugify(person)}",
            f"edgeface/dev3/presence/{slugify(person)}",
        }
        versions = {d: statuses(d)[-1]["gallery"]["version"] for d in DEVICES}
        assert versions["dev1"] == versions["dev2"] != versions["dev3"]
        assert versions["dev1"] == folder_version(central)  # what an operator compares with
        assert all(statuses(d)[-1]["device"] == d for d in DEVICES)

        # dev2 dies without a goodbye: the broker publishes its LWT, the others stay online.
        procs["dev2"].send_signal(signal.SIGKILL)
        procs["dev2"].wait(timeout=10)
        recorder.wait_until(
            lambda: recorder.payloads("edgeface/dev2/availability")[-1:] == [b"offline"],
            timeout=15,
            what="dev2's LWT",
        )
        time.sleep(1.0)  # anything wrongly sent to the others would arrive now
        for device in ("dev1", "dev3"):
            assert b"offline" not in recorder.payloads(f"edgeface/{device}/availability")
            assert procs[device].poll() is None

        late = recorder_factory(mosquitto, "edgeface/+/availability")
        late.wait_until(lambda: len(late.messages) >= 3, what="three retained availabilities")
        assert {m.topic: m.payload for m in late.messages} == {
            "edgeface/dev1/availability": b"online",
            "edgeface/dev2/availability": b"offline",
            "edgeface/dev3/availability": b"online",
        }

        for device in ("dev1", "dev3"):
            procs[device].send_signal(signal.SIGTERM)
        for device in ("dev1", "dev3"):
            assert procs[device].wait(timeout=30) == 0, procs[device].stderr.read()[-2000:]
            assert recorder.payloads(f"edgeface/{device}/availability")[-1] == b"offline"
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
            if proc.stderr:
                proc.stderr.close()


# -- the gallery push recipe (deploy/fleet) ---------------------------------------------------

FLEET = Path(__file__).resolve().parents[2] / "deploy" / "fleet"


def folder_version(root: Path) -> str:
    import importlib.util

    spec = importlib.util.spec_from_file_location("gallery_version", FLEET / "gallery_version.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.folder_version(root))


def daemon_version(root: Path, analyzer) -> str:
    """The version the daemon computes (Gallery.refresh) for this folder."""
    from edgeface.config import GalleryConfig
    from edgeface.gallery.matcher import Thresholds
    from edgeface.gallery.store import Gallery

    gallery = Gallery(
        root, GalleryConfig(path=str(root), settle_seconds=0), Thresholds(0.6, 0.45), analyzer
    )
    return gallery.refresh(time.time()).version


@pytest.mark.skipif(shutil.which("rsync") is None, reason="rsync not installed")
def test_push_recipe_puts_devices_in_step_with_the_central_version(fleet_files, tmp_path, analyzer):
    """deploy/fleet/push-gallery.sh between local folders (rsync's ssh transport aside).

    The watcher side of --delay-updates (a live daemon sees one swap) is covered by
    test_gallery.py::test_rsync_delay_updates_swaps_the_folder.
    """
    _, source, _, person = fleet_files
    central = tmp_path / "central"
    shutil.copytree(source, central)
    (central / ".DS_Store").write_bytes(b"litter")
    devices = [tmp_path / "door", tmp_path / "garden"]

    def push() -> None:
        result = subprocess.run(
            ["sh", str(FLEET / "push-gallery.sh"), str(central), *map(str, devices)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr

    push()
    version = folder_version(central)
    assert version == daemon_version(central, analyzer)
    for device in devices:
        assert folder_version(device) == daemon_version(device, analyzer) == version
        assert not (device / ".DS_Store").exists()
        assert oct((device / person / "0.jpg").stat().st_mode & 0o777) == "0o640"

    # central changes: a person renamed, a photo removed, a negative added
    (central / person).rename(central / "Eileen")
    (central / "Eileen" / "1.jpg").unlink()
    (central / "Eileen" / "not").mkdir()
    shutil.copy(central / "Eileen" / "0.jpg", central / "Eileen" / "not" / "x.jpg")
    push()
    new_version = folder_version(central)
    assert new_version != version
    for device in devices:
        assert sorted(p.name for p in device.iterdir()) == ["Eileen"]
        assert not list(device.rglob(".~tmp~"))
        assert daemon_version(device, analyzer) == new_version
