"""The scales YuNet searches an image at: the smallest wanted face first, big faces last."""

from __future__ import annotations

import itertools

import pytest

from edgeface.yunet import COARSEST_SIDE, MIN_SEARCH_PIXELS, SMALLEST_INPUT_FACE, search_scales


def test_a_640x480_frame_is_one_pass_at_half_size() -> None:
    assert search_scales(640, 480, 40) == [SMALLEST_INPUT_FACE / 40]


def test_a_1080p_frame_adds_a_pass_where_a_frame_high_face_fits() -> None:
    fine, coarse = search_scales(1920, 1080, 40)
    assert fine == SMALLEST_INPUT_FACE / 40
    assert 1080 * coarse == pytest.approx(COARSEST_SIDE)


def test_images_are_never_enlarged_and_big_photos_end_within_range() -> None:
    scales = search_scales(6000, 4000, 8)
    assert scales[0] == 1.0
    assert all(a > b for a, b in itertools.pairwise(scales))
    assert 4000 * scales[-1] <= COARSEST_SIDE * 1.01
    assert search_scales(100, 80, 40) == [0.5]


def test_small_camera_frames_are_searched_at_no_fewer_pixels_than_320x240() -> None:
    # A 352x288 (CIF) frame's 35-60 px faces would span 17-30 px at the half size a 40 px
    # face asks for; it is searched at 320x240's pixel count instead.
    (scale,) = search_scales(352, 288, 40)
    assert 352 * 288 * scale**2 == pytest.approx(MIN_SEARCH_PIXELS)
    assert search_scales(320, 240, 40) == [1.0]
    # Images with fewer pixels than that (thumbnails, tight face crops) are searched as before.
    assert search_scales(160, 160, 40) == [0.5]
    assert search_scales(250, 250, 40) == [0.5]
    # Frames with four times those pixels or more are searched as before.
    assert search_scales(1280, 720, 40)[0] == SMALLEST_INPUT_FACE / 40
