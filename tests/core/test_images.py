"""Every kind of image file a user may upload gets a correct RGB picture or a clear error."""

import io

import numpy as np
import pytest
from PIL import Image

from gradcam_core.images import MAX_SIDE, ImageLoadError, load_image
from tests.image_files import bomb_png


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg_bytes(image: Image.Image, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95, **kwargs)
    return buffer.getvalue()


def test_empty_file():
    with pytest.raises(ImageLoadError, match=r"'x.png' is empty \(0 bytes\)"):
        load_image(b"", name="x.png")


def test_random_bytes_named_png():
    noise = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    with pytest.raises(ImageLoadError, match=r"not an image format we can read"):
        load_image(noise, name="noise.png")


def test_truncated_jpeg():
    data = _jpeg_bytes(Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)))
    with pytest.raises(ImageLoadError, match=r"truncated or corrupt"):
        load_image(data[: len(data) // 2], name="half.jpg")


def test_jpeg_cut_off_inside_its_header():
    data = _jpeg_bytes(Image.new("RGB", (32, 32), (200, 10, 10)))
    with pytest.raises(ImageLoadError, match=r"truncated or corrupt"):
        load_image(data[:30], name="stub.jpg")


def test_decompression_bomb_is_refused_before_decoding(monkeypatch):
    decoded = []
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(self) or None)
    data = bomb_png(12000, 12000)
    assert len(data) < 2000
    with pytest.raises(ImageLoadError, match=r"12000×12000 = 144 megapixels, over the 64 MP limit.*before decoding"):
        load_image(data, name="bomb.png")
    # beyond Pillow's own hard limit, the same kind of message
    with pytest.raises(ImageLoadError, match=r"far more than the 64 MP limit.*refused before decoding"):
        load_image(bomb_png(30000, 30000), name="bomb.png")
    assert decoded == [], "no pixel data was decoded"


def test_very_large_photo_is_reduced_not_refused():
    big = Image.new("RGB", (6000, 4000), (10, 200, 30))
    image = load_image(_jpeg_bytes(big))
    assert max(image.size) == MAX_SIDE and image.size[0] / image.size[1] == pytest.approx(1.5, rel=0.01)
    assert np.abs(np.asarray(image).astype(int)[0, 0] - (10, 200, 30)).max() <= 3


def test_one_pixel():
    image = load_image(_png_bytes(Image.new("RGB", (1, 1), (1, 2, 3))))
    assert image.size == (1, 1) and image.getpixel((0, 0)) == (1, 2, 3)


def test_grayscale():
    image = load_image(_png_bytes(Image.new("L", (4, 4), 77)))
    assert image.mode == "RGB" and image.getpixel((0, 0)) == (77, 77, 77)


def test_sixteen_bit_grayscale_is_scaled_not_clipped():
    values = np.array([[0, 257 * 100], [65535, 32896]], dtype=np.uint16)
    image = load_image(_png_bytes(Image.fromarray(values)))
    pixels = np.asarray(image)[:, :, 0]
    np.testing.assert_array_equal(pixels, [[0, 100], [255, 128]])


def test_rgba_is_composited_on_white():
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)  # opaque red
    rgba[0, 1] = (0, 0, 255, 0)  # fully transparent blue -> white
    rgba[1, 0] = (0, 0, 0, 128)  # half-transparent black -> mid grey
    pixels = np.asarray(load_image(_png_bytes(Image.fromarray(rgba, "RGBA"))))
    assert pixels[0, 0].tolist() == [255, 0, 0]
    assert pixels[0, 1].tolist() == [255, 255, 255]
    assert abs(int(pixels[1, 0, 0]) - 127) <= 1


def test_palette_png():
    palette = Image.new("P", (3, 1))
    palette.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 759)
    palette.putdata([0, 1, 2])
    pixels = np.asarray(load_image(_png_bytes(palette)))
    assert pixels[0].tolist() == [[255, 0, 0], [0, 255, 0], [0, 0, 255]]


def test_cmyk_jpeg():
    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # no cyan, full magenta + yellow = red
    pixels = np.asarray(load_image(_jpeg_bytes(cmyk)))
    r, g, b = pixels[4, 4].astype(int)
    assert r > 200 and g < 60 and b < 60


def test_exif_rotated_jpeg_is_upright():
    wide = np.zeros((20, 40, 3), dtype=np.uint8)
    wide[:, :20] = (255, 0, 0)  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    image = load_image(_jpeg_bytes(Image.fromarray(wide), exif=exif.tobytes()))
    assert image.size == (20, 40), "portrait once the orientation tag is applied"
    top = np.asarray(image)[2, 10].astype(int)
    assert top[0] > 200 and top[1] < 60, "the red half is on top after a clockwise turn"


def test_animated_gif_first_frame():
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    r, _, b = np.asarray(load_image(buffer.getvalue()))[0, 0].astype(int)
    assert r > 200 and b < 60


def test_file_over_the_size_limit():
    data = _png_bytes(Image.new("RGB", (200, 200)))
    with pytest.raises(ImageLoadError, match=r"over the 0 MB limit"):
        load_image(data, name="big.png", max_bytes=100)


def test_paths_and_missing_files(tmp_path):
    path = tmp_path / "ok.png"
    path.write_bytes(_png_bytes(Image.new("RGB", (5, 3), (9, 9, 9))))
    assert load_image(path).size == (5, 3)
    with pytest.raises(ImageLoadError, match=r"image file not found"):
        load_image(tmp_path / "missing.png")
