"""atheris harness: arbitrary bytes -> images.decode_image -> FaceAnalyzer.analyze.

Owns: the fuzz target only. A user-caused problem (`EdgefaceError` from decoding: empty,
too large, a decompression bomb, not an image) is the expected outcome for most inputs; any
other exception, a crash in OpenCV/TFLite, a hang (-timeout) or runaway memory (-rss_limit_mb)
is a finding, and libFuzzer writes the input to `crash-*` / `timeout-*` / `oom-*`.

Run: python tests/fuzz/fuzz_images.py CORPUS_DIR -max_total_time=30 (libFuzzer flags).
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["edgeface"]):
    from edgeface.analyzer import FaceAnalyzer
    from edgeface.config import Config
    from edgeface.errors import EdgefaceError
    from edgeface.images import decode_image


def main() -> None:
    analyzer = FaceAnalyzer.from_config(Config())

    def test_one_input(data: bytes) -> None:
        try:
            image = decode_image(data, "fuzz-input")
        except EdgefaceError:
            return
        for face in analyzer.analyze(image):
            assert face.embedding.shape[-1] > 0

    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
