"""Detect → align → embed for one image: the shared core of the daemon, the gallery and the CLI.

Owns: loading the configured detector and embedder models and running the three pure stages in
order on a BGR array; camera frames are searched as `camera.roi` and `detection.*` say
(`detect_frame`, see `edgeface.regions`), photos always whole (`detect`). Never: reads image files, matches against a gallery, or keeps state
between images (beyond the loaded models).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from edgeface.align import AlignSettings, align_face
from edgeface.config import CameraConfig, Config
from edgeface.detect import BlazeFaceDetector, DetectorSettings, FaceDetector
from edgeface.detectors import default_min_score, load_detector
from edgeface.embed import Embedder
from edgeface.errors import EdgefaceError
from edgeface.models import ModelSpec, find_model
from edgeface.models.fallback import load_float_instead
from edgeface.regions import AUTO_TILE_FACTOR, FrameDetector, RegionSettings
from edgeface.roles import check_loaded, locate
from edgeface.runtime import TFLiteModel
from edgeface.types import AlignedFace, Embedding, Face, ImageBGR
from edgeface.yunet import YuNetDetector

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnalyzedFace:
    face: Face
    aligned: AlignedFace
    embedding: Embedding


class FaceAnalyzer:
    """Owns one detector and one embedder; `analyze` is a pure function of the image.

    Safe to share between threads (the pipeline and the gallery watcher): TFLite interpreters
    are not, so each model call holds a lock. One set of interpreters instead of one per thread
    saves the daemon a second copy of FaceNet (about 60 MB); a gallery photo analysed while
    frames arrive delays the pipeline by one photo's detection and embedding.
    """

    def __init__(
        self,
        detector: FaceDetector,
        embedder: Embedder,
        align_settings: AlignSettings,
        model_name: str,
        frame_detector: FrameDetector | None = None,
        model_cache: Path | None = None,
    ) -> None:
        self.detector = detector
        self.embedder = embedder
        self.align_settings = align_settings
        self.model_name = model_name
        self.model_cache = model_cache  # where a camera's tile model is found
        # Without a region or tile settings, a camera frame is searched like a photo.
        self.frame_detector = frame_detector or FrameDetector(
            detector, detector, RegionSettings(tiles="off")
        )
        self._lock = threading.Lock()

    @property
    def embedding_version(self) -> str:
        """Identifies what a cached embedding depends on: models and crop geometry."""
        return f"{self.model_name}/{self.align_settings.version}"

    @classmethod
    def from_config(cls, cfg: Config) -> FaceAnalyzer:
        cache = Path(cfg.models.cache_dir) if cfg.models.cache_dir else None
        det_path, det_spec = locate("models.detector", cfg.models.detector, cache)
        emb_path, emb_spec = locate("models.embedder", cfg.models.embedder, cache)
        emb_name = Path(cfg.models.embedder).stem
        delegate = cfg.runtime.delegate
        threads = cfg.runtime.num_threads
        try:
            emb_model = TFLiteModel(emb_path, threads, delegate)
        except EdgefaceError as exc:
            if not delegate:  # the runtime itself cannot load it (32-bit ARM's tflite-runtime)
                emb_model, emb_name = load_float_instead(exc, emb_spec, cache, threads)
            elif cfg.runtime.delegate_fallback == "refuse":
                raise
            else:
                log.warning("%s; running on the CPU instead (runtime.delegate_fallback: cpu)", exc)
                emb_model = TFLiteModel(emb_path, threads)
        check_loaded("models.embedder", cfg.models.embedder, emb_model)
        settings = DetectorSettings(
            min_score=(
                default_min_score(det_path)
                if cfg.recognition.detector_min_score is None
                else cfg.recognition.detector_min_score
            ),
            min_face_px=cfg.recognition.min_face_px,
            search_face_px=cfg.detection.min_face_px,
        )
        detector = load_detector(det_path, det_spec, settings, threads)
        name = f"{Path(cfg.models.detector).stem}+{emb_name}"
        return cls(
            detector,
            Embedder(emb_model, emb_spec.normalisation if emb_spec else "prewhiten"),
            embedder_alignment(emb_spec, emb_model.input_shape[1], cfg.recognition.margin),
            name,
            frame_detector(cfg, detector, cache, settings),
            cache,
        )

    def camera_detector(self, cfg: Config, camera: CameraConfig) -> FrameDetector:
        """How `camera`'s frames are searched (its ROI and detection settings), with this
        analyzer's detector; for `detect_frame`."""
        return frame_detector(cfg, self.detector, self.model_cache, self.detector.settings, camera)

    def detect(self, image: ImageBGR) -> list[Face]:
        """Faces in a photo: the whole image, no region, no tiles."""
        with self._lock:
            return self.detector.detect(image)

    def detect_frame(self, image: ImageBGR, search: FrameDetector | None = None) -> list[Face]:
        """Faces in a camera frame: its region of interest, plus tiles when configured; `search`
        is a camera's own (`camera_detector`), else the configured camera's."""
        with self._lock:
            return (search or self.frame_detector).detect(image)

    def embed_face(self, image: ImageBGR, face: Face) -> AnalyzedFace:
        aligned = align_face(image, face, self.align_settings)
        with self._lock:
            embedding = self.embedder.embed(aligned.crop_rgb)
        return AnalyzedFace(face, aligned, embedding)

    def analyze(self, image: ImageBGR) -> list[AnalyzedFace]:
        """Every detected face, largest first, with its embedding."""
        return [self.embed_face(image, face) for face in self.detect(image)]


def embedder_alignment(spec: ModelSpec | None, size: int, margin: float) -> AlignSettings:
    """The crop an embedder was trained on: its manifest `alignment`; a bare .tflite file is
    taken for a FaceNet (box crop)."""
    return AlignSettings(size=size, margin=margin, method=spec.alignment if spec else "box")


def open_embedder(name_or_path: str, cache: Path | None, threads: int = 1) -> Embedder:
    """An embedder by manifest name or .tflite path, normalising as its manifest entry says."""
    path, spec = find_model(name_or_path, cache)
    return Embedder(TFLiteModel(path, threads), spec.normalisation if spec else "prewhiten")


def frame_detector(
    cfg: Config,
    detector: FaceDetector,
    cache: Path | None,
    settings: DetectorSettings,
    camera: CameraConfig | None = None,
) -> FrameDetector:
    """The frame search of `camera` (default: the first camera of `cfg`); the tile model is
    loaded only if tiles can run.

    Tiles serve BlazeFace only: YuNet already searches the whole region at the resolution
    `detection.min_face_px` asks for, so `detection.tiles` is ignored with it (logged).
    """
    camera = camera or cfg.camera
    det = cfg.detection_for(camera)
    if not isinstance(detector, BlazeFaceDetector):
        if det.tiles != "off":
            log.warning(
                "detection.tiles: %s ignored: %s searches the whole frame at the resolution"
                " detection.min_face_px (%d) asks for",
                det.tiles,
                cfg.models.detector,
                det.min_face_px,
            )
        if isinstance(detector, YuNetDetector):
            # A camera's own detection.min_face_px sets its search size.
            search = dataclasses.replace(detector.settings, search_face_px=det.min_face_px)
            if search != detector.settings:
                detector = detector.with_settings(search)
        return FrameDetector(detector, None, RegionSettings(camera.roi, "off"))
    regions = RegionSettings(
        camera.roi,
        det.tiles,
        det.tile_size,
        det.max_tiles,
        round(AUTO_TILE_FACTOR * detector.input_size),
    )
    tile_detector: FaceDetector = detector
    if det.tiles != "off":
        path, spec = locate("detection.tile_detector", det.tile_detector, cache)
        # A tile without a face is common and not a portrait: no padded retry.
        tile_settings = dataclasses.replace(
            settings,
            retry_padded=False,
            min_score=max(settings.min_score, det.tile_min_score),
        )
        tile_detector = load_detector(
            path, spec, tile_settings, cfg.runtime.num_threads, "detection.tile_detector"
        )
    return FrameDetector(detector, tile_detector, regions)
