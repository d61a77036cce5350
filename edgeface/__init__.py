"""edgeface: face recognition on small devices, published over MQTT."""

__version__ = "0.1.0"
