"""The paho-mqtt client as the config describes it: protocol, credentials, TLS, last will.

Owns: turning `mqtt.*` into a configured (not yet connected) paho v2 client, and the one-line
reason for a failed connection attempt. Never: connects, publishes or logs the password (it goes
to paho only; a password without a username is refused without echoing it).
"""

from __future__ import annotations

import logging
import socket
import ssl

import paho.mqtt.client as mqtt

from edgeface.config import ConfigError, MqttConfig, check_tls_files, read_password


def build_client(
    cfg: MqttConfig, client_id: str, will_topic: str, max_inflight: int
) -> mqtt.Client:
    """A client with `offline` as its retained last will on `will_topic`."""
    v5 = cfg.protocol == "5"
    client = mqtt.Client(
        callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        # Unacknowledged events live in the outbox, not in a broker session.
        clean_session=None if v5 else True,
    )
    # paho's own messages are diagnostics (some at ERROR for a routine disconnect); the
    # user-facing story is the publisher's one line per state change, so they all go to DEBUG.
    paho_log = logging.getLogger("edgeface.publish.mqtt.paho")
    client.on_log = lambda _c, _u, _level, text: paho_log.debug("%s", text)
    client.will_set(will_topic, b"offline", qos=1, retain=True)
    password = read_password(cfg)
    if password is not None and not cfg.username:
        raise ConfigError("mqtt.username: required when a password is configured")
    if cfg.username:
        client.username_pw_set(cfg.username, password)
    if cfg.tls.enabled:
        _configure_tls(client, cfg)
    client.max_inflight_messages_set(max_inflight + 20)
    return client


def _configure_tls(client: mqtt.Client, cfg: MqttConfig) -> None:
    tls = cfg.tls
    check_tls_files(tls)
    try:
        client.tls_set(
            ca_certs=tls.ca_file,  # None: the system's trusted CAs
            certfile=tls.cert_file,
            keyfile=tls.key_file,
            cert_reqs=ssl.CERT_REQUIRED,
        )
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise ConfigError(f"mqtt.tls: cannot load certificates ({exc})") from exc
    # Like mosquitto_pub --insecure: skips the host name check only; the chain is still verified.
    client.tls_insecure_set(tls.insecure)


def describe_connect_error(exc: BaseException | None, host: str, port: int) -> str:
    """A one-line reason for a failed connection attempt, for logs and `last_error`."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: certificate verify failed ({exc.verify_message})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc}"
    if isinstance(exc, ConnectionRefusedError):
        return f"connection to {host}:{port} refused (is the broker running?)"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve broker host {host!r} ({exc.strerror})"
    if isinstance(exc, TimeoutError):
        return f"connection to {host}:{port} timed out"
    if isinstance(exc, OSError):
        return f"cannot connect to {host}:{port} ({exc.strerror or exc})"
    return f"cannot connect to {host}:{port}"
