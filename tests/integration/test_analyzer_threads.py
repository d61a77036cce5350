"""One FaceAnalyzer shared by the pipeline and the gallery thread, on the real models.

TFLite interpreters are not thread-safe; the daemon shares one analyzer between its threads to
keep a single copy of FaceNet in memory, so concurrent calls must give exactly the answers that
one thread gets.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np


def test_concurrent_calls_give_the_answers_of_one_thread(analyzer, astronaut_bgr):
    images = [
        astronaut_bgr,
        cv2.flip(astronaut_bgr, 1),
        cv2.resize(astronaut_bgr, None, fx=0.6, fy=0.6),
        cv2.convertScaleAbs(astronaut_bgr, alpha=0.7, beta=30),
    ]
    expected = [analyzer.analyze(image)[0].embedding for image in images]
    mismatches: list[int] = []
    failures: list[BaseException] = []

    def worker(offset: int) -> None:
        try:
            for n in range(40):
                i = (n + offset) % len(images)
                got = analyzer.analyze(images[i])[0].embedding
                if not np.allclose(got, expected[i], atol=1e-5):
                    mismatches.append(i)
        except BaseException as exc:  # an index error from a garbled detection counts too
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not failures and not mismatches
