"""Pure image operations on PNG bytes: sizes, fitting an init image to what an engine accepts, and the
thumbnail a stored image gets."""

import functools
import io
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
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
# Measured by bench/store.py on a 1024x1024 image: WebP method 0 encodes the thumbnail in under half the
# time of the default 4 (and 15 % less than method 1) at the same quality, with a file 4 % larger; a
# reducing gap of 1 halves the picture by averaging pixels before the bicubic resize, instead of a bicubic
# resize of the whole picture (half the time). Neither changes the thumbnail to the eye
# (tests/generations/test_services.py compares it with the one made before).
WEBP_QUALITY = 82
WEBP_METHOD = 0
REDUCING_GAP = 1.0


@dataclass(frozen=True)
class Picture:
    width: int
    height: int
    thumbnail: bytes  # WebP, at most THUMBNAIL_SIDE on its longer side


def picture_of(png: bytes) -> Picture:
    """The PNG's size and its thumbnail, decoding it once."""
    webp = io.BytesIO()
    with Image.open(io.BytesIO(png)) as picture:
        picture.load()
        size = picture.size
        small = picture if picture.mode in ("RGB", "RGBA") else picture.convert("RGB")
        small.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.BICUBIC, reducing_gap=REDUCING_GAP)
        if small.mode == "RGBA" and cast(tuple[int, int], small.getchannel("A").getextrema())[0] < 255:
            small = over_checkerboard(small)  # transparent pixels shown as the image page shows them
        elif small.mode != "RGB":
            small = small.convert("RGB")
        small.save(webp, "WEBP", quality=WEBP_QUALITY, method=WEBP_METHOD)
    return Picture(width=size[0], height=size[1], thumbnail=webp.getvalue())


def picture_soon(png: bytes) -> Future[Picture]:
    """picture_of(png), made on another thread while the caller goes on (Pillow lets go of the GIL while it
    decodes, resizes and encodes, so it runs on another core). At most one picture a core is made at once,
    however many threads ask."""
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
