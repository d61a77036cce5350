"""Which model may fill which config key (edgeface.roles), from the manifest's `kind`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from edgeface.config import ConfigError
from edgeface.models import load_manifest
from edgeface.roles import MODEL_ROLES, check_loaded, check_role


def test_every_manifest_model_fits_exactly_the_keys_of_its_kind() -> None:
    for name, spec in load_manifest().models.items():
        for key, role in MODEL_ROLES.items():
            if spec.kind == role:
                assert check_role(key, name) == spec
            else:
                with pytest.raises(ConfigError, match=rf"^{key}: {name} is an? {spec.kind}, not"):
                    check_role(key, name)


def test_unknown_name_is_named_with_its_key() -> None:
    with pytest.raises(ConfigError, match=r"^models.embedder: model 'nope': not in the manifest"):
        check_role("models.embedder", "nope")


@dataclass
class Loaded:
    outputs: list[dict[str, Any]]


BLAZEFACE = Loaded([{"shape": [1, 2304, 16]}, {"shape": [1, 2304, 1]}])
FACENET = Loaded([{"shape": [1, 128]}])


def test_raw_file_is_checked_by_its_tensors() -> None:
    check_loaded("models.detector", "d.tflite", BLAZEFACE)
    check_loaded("models.embedder", "e.tflite", FACENET)
    with pytest.raises(ConfigError, match=r"^models.detector: e.tflite does not look like a det"):
        check_loaded("models.detector", "e.tflite", FACENET)
    with pytest.raises(ConfigError, match=r"^models.embedder: d.tflite does not look like an em"):
        check_loaded("models.embedder", "d.tflite", BLAZEFACE)
    check_loaded("models.embedder", "blazeface-full", BLAZEFACE)  # a name: kind was checked
