"""edgeface: face recognition on small devices, published over MQTT."""

import os

# OpenCV reads this once, at its first image decode anywhere in the process; setting it before
# any edgeface module imports cv2 bounds decompression bombs (about 64 megapixels).
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(64 * 1024 * 1024))

__version__ = "0.1.0"
