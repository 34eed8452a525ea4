"""Pure image operations on PNG bytes: sizes, fitting an init image to what an engine accepts, and the
thumbnail a stored image gets."""

import functools
import io
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import ModuleType
from typing import cast

from PIL import Image, ImageOps

from generations.engines import nearest_size


def png_size(png: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(png)) as picture:
        return picture.size


def fit_image(png: bytes, size: tuple[int, int]) -> bytes:
    """The image scaled to cover `size` and centre-cropped to it, so nothing is stretched."""
    with Image.open(io.BytesIO(png)) as picture:
        picture.load()
        fitted = ImageOps.fit(picture, size, Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    fitted.save(buffer, "PNG")
    return buffer.getvalue()


def fit_to_engine(png: bytes, engine_id: str) -> tuple[bytes, str]:
    """The init image at a size the engine accepts, and its original size ("WxH") when that changed."""
    width, height = png_size(png)
    size = nearest_size(engine_id, width, height)
    if size == (width, height):
        return png, ""
    return fit_image(png, size), f"{width}x{height}"


def invert_mask(png: bytes) -> bytes:
    """A mask with black and white swapped (MASK_IMAGE_BLACK marks with black what MASK_IMAGE_WHITE marks
    with white)."""
    with Image.open(io.BytesIO(png)) as mask:
        inverted = ImageOps.invert(mask.convert("L"))
    buffer = io.BytesIO()
    inverted.save(buffer, "PNG")
    return buffer.getvalue()


THUMBNAIL_SIDE = 384
# Measured by bench/store.py on 1024x1024 images. libvips decodes the PNG and shrinks it in one pass, on
# every core and without holding the GIL: 16 ms where Pillow took 25 ms to decode and resize (9 and 13 ms a
# picture when four are made at once). A JPEG at quality 90 encodes the thumbnail in 0.4 ms where WebP took
# 7 ms even at its fastest (method 0), and is as faithful to the picture as the WebP thumbnails Studio made
# before (quality 82, method 4): the same mean pixel difference from the exact scaled picture on photo-like
# detail, a smaller one on smooth pictures. Its files are larger: 1.25-1.3x the WebP's on photo-like detail.
# Neither changes the thumbnail to the eye (tests/generations/test_services.py compares it with the one
# made before).
THUMBNAIL_FORMAT = "JPEG"
THUMBNAIL_EXTENSION = "jpg"
THUMBNAIL_QUALITY = 90


@functools.cache
def _vips() -> ModuleType:
    """libvips, loaded by the first thumbnail made: only the processes that store images (the workers) pay
    for loading it (about 36 ms and 15 MB), not the web processes."""
    import pyvips

    # It would otherwise keep recent operations, and the buffers they read, in a cache: every picture is
    # new, so the cache would only hold memory.
    pyvips.cache_set_max(0)
    return pyvips


@dataclass(frozen=True)
class Picture:
    width: int
    height: int
    thumbnail: bytes  # a JPEG, at most THUMBNAIL_SIDE on its longer side


def picture_of(png: bytes) -> Picture:
    """The PNG's size and its thumbnail, decoding it once: libvips shrinks it as it decodes, to 8-bit sRGB
    whatever the PNG's colour type and depth; Pillow shows transparent pixels over a checkerboard and encodes
    the JPEG."""
    width, height = png_size(png)
    vips = _vips()
    try:
        shrunk = vips.Image.thumbnail_buffer(
            png, THUMBNAIL_SIDE, height=THUMBNAIL_SIDE, size="down", option_string="fail_on=error"
        )
        shrunk = shrunk.colourspace("srgb").cast("uchar")  # grey becomes three bands; 16 bits become 8
        mode = "RGBA" if shrunk.bands == 4 else "RGB"
        pixels = shrunk.write_to_memory()  # the decode happens here
    except vips.Error as exc:  # as Pillow reports a picture it cannot read
        raise OSError(f"The image could not be decoded: {exc.message.strip()}") from exc
    small = Image.frombytes(mode, (shrunk.width, shrunk.height), pixels)
    if mode == "RGBA" and cast(tuple[int, int], small.getchannel("A").getextrema())[0] < 255:
        small = over_checkerboard(small)  # transparent pixels shown as the image page shows them
    elif mode == "RGBA":
        small = small.convert("RGB")
    thumbnail = io.BytesIO()
    small.save(thumbnail, THUMBNAIL_FORMAT, quality=THUMBNAIL_QUALITY)
    return Picture(width=width, height=height, thumbnail=thumbnail.getvalue())


def picture_soon(png: bytes) -> Future[Picture]:
    """picture_of(png), made on another thread while the caller goes on (libvips and Pillow let go of the GIL
    while they decode, shrink and encode, so it runs on another core). At most one picture a core is made at
    once, however many threads ask."""
    return _picture_makers(os.getpid()).submit(picture_of, png)


@functools.cache
def _picture_makers(pid: int) -> ThreadPoolExecutor:
    """The process's own pool (by pid: a forked worker never inherits its parent's threads)."""
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="picture")


CHECKER_SIDE = 8
CHECKER_COLOURS = ((255, 255, 255), (214, 218, 226))


def over_checkerboard(picture: Image.Image) -> Image.Image:
    """An RGBA picture drawn over a light checkerboard, as RGB: what image editors show for transparency."""
    width, height = picture.size
    tile = Image.new("RGB", (2 * CHECKER_SIDE, 2 * CHECKER_SIDE), CHECKER_COLOURS[0])
    tile.paste(CHECKER_COLOURS[1], (0, 0, CHECKER_SIDE, CHECKER_SIDE))
    tile.paste(CHECKER_COLOURS[1], (CHECKER_SIDE, CHECKER_SIDE, 2 * CHECKER_SIDE, 2 * CHECKER_SIDE))
    board = Image.new("RGB", picture.size)
    for y in range(0, height, tile.height):
        for x in range(0, width, tile.width):
            board.paste(tile, (x, y))
    board.paste(picture, mask=picture.getchannel("A"))
    return board


def as_png(data: bytes) -> bytes:
    """Studio stores PNGs (they carry the metadata); an answer in another format is converted, alpha kept."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return data
    with Image.open(io.BytesIO(data)) as picture:
        out = io.BytesIO()
        picture.save(out, "PNG")
        return out.getvalue()
