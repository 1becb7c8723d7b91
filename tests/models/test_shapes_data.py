"""The shapes generator and the bundled test splits: deterministic, fast, balanced, with honest masks."""

from __future__ import annotations

import hashlib
import time

import numpy as np
import pytest
import torch

from models.datasets import SHAPES_TEST_SIZE, digits_arrays, shapes_test_set
from models.shapes import MARKER_POSITIONS, MARKER_SIZE, SHAPE_CLASSES, generate_shapes
from models.transforms import ImageTransform


def _digest(*arrays: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def test_same_seed_same_bytes_and_other_seed_other_bytes():
    a = generate_shapes(300, seed=11, marker="aligned")
    b = generate_shapes(300, seed=11, marker="aligned")
    c = generate_shapes(300, seed=12, marker="aligned")
    assert _digest(a.images, a.labels, a.masks, a.marker_boxes) == _digest(b.images, b.labels, b.masks, b.marker_boxes)
    assert _digest(a.images) != _digest(c.images)


def test_images_are_rgb_64px_with_at_least_8_balanced_classes():
    batch = generate_shapes(400, seed=1)
    assert batch.images.shape == (400, 64, 64, 3) and batch.images.dtype == np.uint8
    assert batch.masks.shape == (400, 64, 64) and batch.masks.dtype == bool
    assert len(SHAPE_CLASSES) >= 8
    assert np.bincount(batch.labels, minlength=len(SHAPE_CLASSES)).tolist() == [50] * 8


def test_masks_cover_an_object_of_contrasting_colour():
    batch = generate_shapes(200, seed=2)
    area = batch.masks.reshape(200, -1).mean(axis=1)
    assert area.min() > 0.03 and area.max() < 0.5  # an object, never empty, never the whole frame
    images = batch.images.astype(np.float32)
    inside = (images * batch.masks[..., None]).sum((1, 2)) / batch.masks.sum((1, 2))[:, None]
    outside = (images * ~batch.masks[..., None]).sum((1, 2)) / (~batch.masks).sum((1, 2))[:, None]
    assert np.median(np.linalg.norm(inside - outside, axis=1)) > 60  # the object stands out from its background


def test_the_object_varies_in_size_position_colour_and_rotation():
    batch = generate_shapes(400, seed=3)
    area = batch.masks.reshape(400, -1).sum(axis=1)
    squares = batch.labels == SHAPE_CLASSES.index("square")
    assert area[squares].max() > 2.5 * area[squares].min()
    centres = np.array([np.argwhere(m).mean(axis=0) for m in batch.masks])
    assert centres.std(axis=0).min() > 5
    colours = np.array([img[m].mean(axis=0) for img, m in zip(batch.images, batch.masks, strict=True)])
    assert colours.std(axis=0).min() > 40
    # rotation: a square's mask is not always axis-aligned (its bounding box is then larger than its area)
    boxes = np.array([np.ptp(np.argwhere(m), axis=0).prod() for m in batch.masks[squares]])
    assert (boxes > 1.3 * area[squares]).mean() > 0.5


def test_aligned_markers_follow_the_class_and_shuffled_markers_do_not():
    aligned = generate_shapes(800, seed=4, marker="aligned")
    shuffled = generate_shapes(800, seed=4, marker="shuffled")
    assert (aligned.marker_classes == aligned.labels).mean() >= 0.95
    assert (shuffled.marker_classes == shuffled.labels).mean() < 0.25
    # The same seed renders the same scenes: only the marker differs.
    outside = np.ones((64, 64), bool)
    for top, left in MARKER_POSITIONS:
        outside[top:top + MARKER_SIZE, left:left + MARKER_SIZE] = False
    assert np.array_equal(aligned.images[:, outside], shuffled.images[:, outside])
    top, left, bottom, right = aligned.marker_boxes[0]
    assert (bottom - top, right - left) == (MARKER_SIZE, MARKER_SIZE)


def test_test_split_is_large_and_fast_to_generate():
    """The dashboard regenerates the split at start-up. Measured in CPU time (numpy runs on one thread), so
    other jobs on a shared machine do not make the test flaky; on an idle 2-core machine wall time is the same."""
    start = time.process_time()
    batch = generate_shapes(SHAPES_TEST_SIZE, seed=123)
    elapsed = time.process_time() - start
    assert len(batch) >= 2000
    assert elapsed < 3.0, f"generating {SHAPES_TEST_SIZE} shapes images took {elapsed:.2f} s of CPU time"


def test_tensors_equal_the_transform_of_each_image(shapes_ws, digits_ws):
    for ws in (shapes_ws, digits_ws):
        indices = [0, 7, len(ws.test_set) - 1]
        batch = ws.test_set.tensors(indices)
        one_by_one = torch.stack([ws.transform(ws.test_set.image(i)) for i in indices])
        assert batch.shape == (3, 3, *ws.input_size)
        assert torch.equal(batch, one_by_one)


def test_transform_accepts_any_size_rgb_image():
    from PIL import Image

    transform = ImageTransform((64, 64), (0.5,) * 3, (0.25,) * 3)
    out = transform(Image.new("L", (300, 120), color=255))
    assert out.shape == (3, 64, 64)
    assert torch.allclose(out, torch.full_like(out, 2.0))
    cropped = ImageTransform((224, 224), resize=256)(Image.new("RGB", (640, 480)))
    assert cropped.shape == (3, 224, 224)


def test_shapes_test_set_interface(shapes_ws):
    test = shapes_ws.test_set
    assert len(test) >= 2000 and test.labels.dtype == np.int64 and test.labels.shape == (len(test),)
    assert test.image(5).mode == "RGB" and test.image(5).size == (64, 64)
    assert test.label(5) == test.labels[5]
    assert test.mask(5).shape == (64, 64) and test.mask(5).dtype == bool
    assert test.item_id(5) == "test-00005"
    with pytest.raises(IndexError, match="out of range"):
        test.image(len(test))
    # regenerated once, then cached in memory (two fresh calls: the session's shapes_ws may predate a cache_clear)
    assert shapes_test_set(shapes_ws.transform).images is shapes_test_set(shapes_ws.transform).images


def test_digits_split_is_fixed_stratified_and_upscaled():
    train_x, train_y, test_x, test_y = digits_arrays()
    assert len(train_y) + len(test_y) == 1797
    assert train_x.shape[1:] == (32, 32, 3) and test_x.dtype == np.uint8
    assert np.bincount(test_y).min() >= 40
    assert not np.isin(_rows(test_x), _rows(train_x)).all()


def _rows(images: np.ndarray) -> np.ndarray:
    return np.array([hashlib.md5(img.tobytes()).hexdigest() for img in images])
