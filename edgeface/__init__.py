"""edgeface: face recognition on small devices, published over MQTT."""

import os

# OpenCV reads this once, at its first image decode anywhere in the process; setting it before
# any edgeface module imports cv2 bounds decompression bombs (about 64 megapixels).
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(64 * 1024 * 1024))

# Matching is one matrix-vector product per face: memory-bound, and BLAS worker threads only add
# wake-up latency next to the TFLite and capture threads (measured: 10,000 people x 5 photos,
# 3 ms single-threaded vs 10 ms with two threads on a busy 2-core machine). Honoured only if
# numpy is imported after edgeface, as in the CLI and the daemon.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

__version__ = "0.1.0"
