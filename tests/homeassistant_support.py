"""A real Home Assistant Core for the integration tests (no tests here).

Owns: the cached HA venv (installed by scripts/homeassistant.sh outside the checkout, the test is
skipped with the reason when that cannot be done), one `hass` process with its own config
directory and free port, onboarding and the MQTT config entry through HA's REST API (as the UI
does), polling entity states with deadlines, and the warnings HA logged.
Never: touches a Home Assistant or broker outside the test's temporary directory; sleeps for a
fixed time instead of waiting for a condition.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from broker import free_port
from cached_install import install_or_skip

REPO = Path(__file__).resolve().parents[1]
INSTALL_SCRIPT = REPO / "scripts" / "homeassistant.sh"
# Logged by every `hass --skip-pip` on Python 3.11, whatever the devices publish.
_EXPECTED_WARNINGS = (
    "Skipping pip installation of required modules",
    "Support for the running Python version",
)


def ha_venv() -> Path:
    """The cached venv with Home Assistant, installed on first use; skips the test if impossible."""
    out = install_or_skip(
        INSTALL_SCRIPT, "Home Assistant", 900, "it needs PyPI and Python 3.11 or 3.12"
    )
    return Path(out.strip().splitlines()[-1])


class HomeAssistant:
    """`hass` in `workdir/config` on a free port; onboarded, with an MQTT entry for `broker_port`."""

    def __init__(self, venv: Path, workdir: Path, input_texts: tuple[str, ...] = ()) -> None:
        self.venv = venv
        self.config_dir = workdir / "config"
        self.config_dir.mkdir(parents=True)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.token = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._old_logs = ""
        texts = "".join(f"  {name}:\n    name: {name}\n    initial: ''\n" for name in input_texts)
        (self.config_dir / "configuration.yaml").write_text(
            "homeassistant:\n  name: edgeface test\n  latitude: 0\n  longitude: 0\n"
            "  elevation: 0\n  unit_system: metric\n  time_zone: UTC\n"
            f"http:\n  server_host: 127.0.0.1\n  server_port: {self.port}\n"
            "api:\nconfig:\nautomation: !include automations.yaml\n"
            f"input_text:\n{texts}"
        )
        (self.config_dir / "automations.yaml").write_text("[]\n")

    # -- process -------------------------------------------------------------------------------

    def start(self, timeout: float = 60) -> None:
        self._old_logs += self._log_text()
        self._proc = subprocess.Popen(
            [str(self.venv / "bin" / "hass"), "-c", str(self.config_dir), "--skip-pip"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")},
        )
        # /api/onboarding answers without a token once HTTP and onboarding are up; with a token,
        # /api/ answers once the API is loaded.
        self.wait(lambda: self._up(), timeout, "Home Assistant to answer HTTP")

    def _up(self) -> bool:
        assert self._proc is not None
        if self._proc.poll() is not None:
            raise AssertionError(f"hass exited ({self._proc.returncode}):\n{self.log()[-3000:]}")
        try:
            if self.token:
                return self.get("/api/") is not None
            urllib.request.urlopen(f"{self.base}/api/onboarding", timeout=2).read()
            return True
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def stop(self, timeout: float = 60) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
        self._proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    # -- logs ----------------------------------------------------------------------------------

    def _log_text(self) -> str:
        path = self.config_dir / "home-assistant.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def log(self) -> str:
        """Everything HA logged, over all its starts in this test."""
        return self._old_logs + self._log_text()

    def problems(self) -> list[str]:
        """WARNING/ERROR lines (with what follows them) other than the two every start logs."""
        entries: list[str] = []
        for line in self.log().splitlines():
            if " WARNING (" in line or " ERROR (" in line or " CRITICAL (" in line:
                entries.append(line)
            elif entries and not line[:4].isdigit():  # a traceback belongs to its entry
                entries[-1] += "\n" + line
        return [e for e in entries if not any(w in e for w in _EXPECTED_WARNINGS)]

    # -- REST ----------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        body: Any = None,
        form: dict[str, str] | None = None,
        raw: bool = False,
    ) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        data = None
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.base + path, data, headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as exc:
            if exc.code == 404 and method == "GET":
                return None
            raise AssertionError(f"{method} {path}: HTTP {exc.code} {exc.read()[:500]!r}") from exc
        if raw:
            return text
        try:
            return json.loads(text)
        except ValueError:
            return text

    def get(self, path: str) -> Any:
        return self._request("GET", path)

    def post(self, path: str, body: Any = None) -> Any:
        return self._request("POST", path, body)

    def onboard(self) -> None:
        """Create the owner through onboarding and log in with the code it returns (as the UI)."""
        client_id = self.base + "/"
        user = self.post(
            "/api/onboarding/users",
            {
                "client_id": client_id,
                "name": "Test",
                "username": "test",
                "password": "edgeface-test-password",
                "language": "en",
            },
        )
        token = self._request(
            "POST",
            "/auth/token",
            form={
                "grant_type": "authorization_code",
                "code": user["auth_code"],
                "client_id": client_id,
            },
        )
        self.token = token["access_token"]

    def add_mqtt(self, host: str, port: int) -> None:
        """The MQTT integration's config flow, as Settings > Devices > Add integration runs it."""
        flow = self.post("/api/config/config_entries/flow", {"handler": "mqtt"})
        assert flow.get("step_id") == "broker", flow
        result = self.post(
            f"/api/config/config_entries/flow/{flow['flow_id']}", {"broker": host, "port": port}
        )
        assert result.get("type") == "create_entry", result

    def state(self, entity_id: str) -> str | None:
        """The entity's state, or None when HA has no such entity."""
        found = self.get(f"/api/states/{entity_id}")
        return None if found is None else str(found["state"])

    def attributes(self, entity_id: str) -> dict[str, Any]:
        found = self.get(f"/api/states/{entity_id}")
        return {} if found is None else dict(found["attributes"])

    def template(self, text: str) -> str:
        """What HA renders `text` to, as text (POST /api/template)."""
        return str(self._request("POST", "/api/template", {"template": text}, raw=True)).strip()

    def mqtt_entities(self) -> set[str]:
        return set(json.loads(self.template("{{ integration_entities('mqtt') | list | tojson }}")))

    def wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(0.2)

    def wait_state(self, entity_id: str, expected: str | None, timeout: float = 30) -> None:
        last: list[str | None] = []

        def reached() -> bool:
            last[:] = [self.state(entity_id)]
            return last[0] == expected

        try:
            self.wait(reached, timeout, f"{entity_id} to be {expected!r}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; it is {last[0]!r}") from None
