"""The example Node-RED flow (deploy/examples/node-red-flow.json) in a real Node-RED.

Node-RED (the version scripts/node-red.sh installs from npm into a cached folder outside the
checkout; skipped with the reason when it cannot be installed) runs headless on a free port with
a temporary userDir holding a copy of the example flow. The copy differs from the example in two
ways only: its broker node points at the test's mosquitto (a user edits that node the same way),
and a file node appended to the switch's output writes what reaches the debug node, so the test
can read what the flow parsed. The real daemon runs on a composed video of real faces.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import daemon_support as support
import pytest
from broker import Mosquitto, free_port, mosquitto_available
from cached_install import install_or_skip

REPO = Path(__file__).resolve().parents[2]
FLOW = REPO / "deploy" / "examples" / "node-red-flow.json"
INSTALL_SCRIPT = REPO / "scripts" / "node-red.sh"


def node_red_bin() -> Path:
    """The cached node-red executable, installed on first use; skips the test if impossible."""
    if shutil.which("npm") is None:
        pytest.skip("npm not found: Node-RED needs Node.js 18.5+ with npm")
    out = install_or_skip(INSTALL_SCRIPT, "Node-RED", 600, "npm registry")
    return Path(out.strip().splitlines()[-1])


def flow_copy(broker_port: int, out: Path) -> list[dict[str, object]]:
    """The example flow with the broker node pointed at `broker_port` and a file node after the
    switch writing each message that reaches the debug node as a JSON line to `out`."""
    nodes: list[dict[str, object]] = json.loads(FLOW.read_text())
    (broker,) = [n for n in nodes if n["type"] == "mqtt-broker"]
    broker.update(broker="127.0.0.1", port=str(broker_port))
    (switch,) = [n for n in nodes if n["type"] == "switch"]
    wires = switch["wires"]
    assert isinstance(wires, list)
    wires[0].append("test_file_out")
    nodes.append(
        {
            "id": "test_file_out",
            "type": "file",
            "z": switch["z"],
            "name": "test: what the debug node got",
            "filename": str(out),
            "filenameType": "str",
            "appendNewline": True,
            "createDir": False,
            "overwriteFile": "false",
            "encoding": "utf8",
            "wires": [[]],
        }
    )
    return nodes


class NodeRed:
    """`node-red` with its own userDir and port; its log goes to a file we can read."""

    def __init__(self, binary: Path, user_dir: Path, flow: list[dict[str, object]]) -> None:
        user_dir.mkdir(parents=True)
        (user_dir / "flows.json").write_text(json.dumps(flow))
        self.port = free_port()
        (user_dir / "settings.js").write_text(
            "module.exports = {\n"
            f"  uiHost: '127.0.0.1', uiPort: {self.port}, flowFile: 'flows.json',\n"
            "  credentialSecret: false, diagnostics: {enabled: false},\n"
            "  telemetry: {enabled: false}, logging: {console: {level: 'info'}},\n"
            "};\n"
        )
        self.log_path = user_dir / "node-red.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [str(binary), "--userDir", str(user_dir), "--settings", str(user_dir / "settings.js")],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "NODE_RED_ENABLE_PROJECTS": "false"},
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"Node-RED never logged {text!r}:\n{self.log()[-3000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


@pytest.fixture
def broker(tmp_path) -> Iterator[Mosquitto]:
    if not mosquitto_available():
        pytest.skip("mosquitto binary not found (apt install mosquitto)")
    started = Mosquitto(tmp_path / "broker")
    started.start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def scene(tmp_path_factory, analyzer) -> support.Scene:
    return support.make_scene(tmp_path_factory.mktemp("node-red-scene"), analyzer)


def test_example_flow_receives_and_parses_recognitions(tmp_path, scene, broker, recorder_factory):
    binary = node_red_bin()
    out = tmp_path / "recognized.jsonl"
    node_red = NodeRed(binary, tmp_path / "node-red", flow_copy(broker.port, out))
    events = recorder_factory(broker, support.EVENTS)
    daemon = None
    try:
        node_red.wait_log("Connected to broker", timeout=30)
        config = support.write_config(tmp_path, scene.video, scene.gallery, broker.port)
        daemon = support.DaemonProcess(config, tmp_path / "daemon.log")
        # One pass of the video: the person (recognized, left), then a stranger (unknown, left).
        events.wait_until(
            lambda: (
                {e["type"] for e in support.received_events(events)} >= {"unknown", "left"}
                and out.exists()
                and out.read_text().count("\n") >= 1
            ),
            timeout=60,
            what="a pass of the video through the daemon and the flow",
        )
    finally:
        if daemon is not None:
            daemon.terminate()
        node_red.stop()
    sent = support.received_events(events)
    got = [json.loads(line) for line in out.read_text().splitlines()]
    # Only recognized events pass the switch, parsed into objects, each as the daemon sent it.
    assert got and all(g["type"] == "recognized" and g["person"] == scene.person for g in got)
    assert {g["id"] for g in got} <= {e["id"] for e in sent if e["type"] == "recognized"}
    assert got[0] == next(e for e in sent if e["id"] == got[0]["id"])
    assert "[error]" not in node_red.log(), node_red.log()[-3000:]
