"""face_recognition worker: dlib's HOG detector + ResNet 128-d embeddings, package defaults.

Runs inside the peer's own venv. Owns: calling the package the way its README and its
`facerec_from_video_file.py` example do: `load_image_file` for photos (PIL, RGB),
`face_locations(img)` (HOG, upsample 1) then `face_encodings(img, locations)` (one jitter,
5-point landmarks) for every face. Video frames are converted BGR to RGB with OpenCV.
Usage: python face_recognition_worker.py REQUEST.json OUT.json (see common.py).
"""

from __future__ import annotations

from typing import Any

from common import Analyze, Face, main, np


def load() -> tuple[Analyze, Any]:
    import face_recognition  # type: ignore[import-not-found, unused-ignore]

    def analyze(img: np.ndarray) -> list[Face]:
        locations = face_recognition.face_locations(img)
        encodings = face_recognition.face_encodings(img, known_face_locations=locations)
        faces: list[Face] = []
        for (top, right, bottom, left), encoding in zip(locations, encodings, strict=True):
            box = [left, top, right - left, bottom - top]
            faces.append(
                (box, np.asarray(encoding), img[max(top, 0) : bottom, max(left, 0) : right])
            )
        return faces

    return analyze, face_recognition.load_image_file


if __name__ == "__main__":
    main(
        load,
        (
            "face_recognition",
            "face_recognition_models",
            "dlib",
            "dlib-bin",
            "opencv-python-headless",
        ),
    )
