"""The native runtime's XNNPACK INFO line is held back; everything else on fd 2 goes through."""

from __future__ import annotations

import os

from edgeface.models import find_model
from edgeface.runtime import TFLiteModel, _native_info_line_dropped
from edgeface.yunet import YuNetDetector


def test_creating_an_interpreter_writes_nothing_to_stderr(capfd):
    TFLiteModel(find_model("blazeface-full")[0])
    assert capfd.readouterr().err == ""


def test_loading_yunet_in_opencv_writes_nothing_to_stderr(capfd):
    YuNetDetector(find_model("yunet")[0])
    assert capfd.readouterr().err == ""


def test_other_lines_written_meanwhile_are_passed_on_in_order(capfd):
    before = os.fstat(2).st_ino
    with _native_info_line_dropped():
        os.write(2, b"first\nINFO: Created TensorFlow Lite XNNPACK delegate for CPU.\nsecond\n")
    assert capfd.readouterr().err == "first\nsecond\n"
    assert os.fstat(2).st_ino == before  # fd 2 is the original again
