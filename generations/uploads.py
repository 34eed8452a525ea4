"""Checks and re-encodes images that people upload (init images) and the masks they paint.

Every file is sniffed from its bytes, sized from its header before any pixel is decoded, decoded once
and saved again as a plain PNG, so nothing a person uploads reaches storage or the API as it came.
"""

import base64
import binascii
import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, cast

from PIL import Image, ImageCms, ImageFile, ImageOps, JpegImagePlugin, PngImagePlugin, WebPImagePlugin

from generations.stability import contract

MAX_UPLOAD_BYTES = contract.MAX_UPLOAD_BYTES
MAX_UPLOAD_PIXELS = 4096 * 4096

ACCEPTED = "PNG, JPEG or WebP"
EMPTY_MESSAGE = f"The file is empty. Choose a {ACCEPTED} image."
# No engine takes a side over 1536, so larger images are kept at 2048 at most: a 12-megapixel photo is
# then checked and stored in well under a second instead of four, while a person waits for the preview.
MAX_STORED_SIDE = 2048
# A painted mask is two flat colours, a few hundred KB at most; this stays well under the request limit.
MAX_MASK_BYTES = 4 * 1024 * 1024
PAINT_SOMETHING = "Paint over the part of the image to change."
PNG_COMPRESS_LEVEL = 1
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MASK_DATA_URL_PREFIX = "data:image/png;base64,"

# Pillow's open() raises on an image over twice its pixel limit without saying how big it is; each format's
# own reader parses the header alone, so the size can be checked, and told, before anything is decoded.
_HEADER_READERS: dict[str, Callable[[IO[bytes]], ImageFile.ImageFile]] = {
    "PNG": PngImagePlugin.PngImageFile,
    "JPEG": JpegImagePlugin.jpeg_factory,
    "WEBP": WebPImagePlugin.WebPImageFile,
}
_DAMAGED = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, KeyError)
_SRGB = ImageCms.createProfile("sRGB")


class UploadRejected(ValueError):
    """An upload that cannot be used; `message` is a sentence to show next to the field."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class CleanImage:
    png: bytes  # re-encoded, without metadata, EXIF orientation applied; RGBA only when has_alpha
    width: int
    height: int
    has_alpha: bool  # some pixel is not fully opaque


def clean_upload(data: bytes | IO[bytes], *, what: str = "image") -> CleanImage:
    """Check an uploaded PNG, JPEG or WebP image and re-encode its first frame as a PNG.

    `data` is the file's bytes or an open file (a Django UploadedFile); no more than MAX_UPLOAD_BYTES + 1
    bytes are read from it. `what` names the image in messages ("The init image is ...").
    """
    content = _read_limited(data)
    kind = _sniff(content)
    try:
        image = _HEADER_READERS[kind](io.BytesIO(content))
    except _DAMAGED as exc:
        raise UploadRejected(_damaged(what)) from exc
    _check_pixels(image.size, what)
    try:
        image.load()  # the first frame only; LOAD_TRUNCATED_IMAGES stays False, so a cut file fails here
        upright = ImageOps.exif_transpose(image)
    except _DAMAGED as exc:
        raise UploadRejected(_damaged(what)) from exc
    pixels = _to_srgb(_plain_mode(upright), image.info.get("icc_profile"))
    has_alpha = pixels.mode == "RGBA" and _band_range(pixels.getchannel("A"))[0] < 255
    if pixels.mode == "RGBA" and not has_alpha:
        pixels = pixels.convert("RGB")
    if max(pixels.size) > MAX_STORED_SIDE:
        pixels.thumbnail((MAX_STORED_SIDE, MAX_STORED_SIDE), Image.Resampling.LANCZOS)
    return CleanImage(png=_encode_png(pixels), width=pixels.width, height=pixels.height, has_alpha=has_alpha)


def clean_mask(data_url: str, *, size: tuple[int, int]) -> bytes:
    """Decode a painted mask ("data:image/png;base64,...") into an L-mode PNG: 255 = change, 0 = keep.

    The mask must be exactly `size` (width, height), the size of the image it was painted over.
    """
    if not data_url.strip():
        raise UploadRejected(PAINT_SOMETHING)
    if not data_url.startswith(MASK_DATA_URL_PREFIX):
        raise UploadRejected("The mask is not a PNG image; paint it again.")
    encoded = data_url.removeprefix(MASK_DATA_URL_PREFIX)
    if len(encoded) > math.ceil(MAX_MASK_BYTES / 3) * 4:
        raise UploadRejected("The mask is larger than 4 MB; paint a simpler one.")
    try:
        content = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise UploadRejected("The mask could not be read; paint it again.") from exc
    if not content.startswith(PNG_MAGIC):
        raise UploadRejected("The mask is not a PNG image; paint it again.")
    try:
        image = PngImagePlugin.PngImageFile(io.BytesIO(content))
    except _DAMAGED as exc:
        raise UploadRejected("The mask could not be read; paint it again.") from exc
    if image.size != size:
        width, height = image.size
        raise UploadRejected(
            f"The mask is {width}×{height} but the image is {size[0]}×{size[1]}; paint it again."
        )
    try:
        image.load()
    except _DAMAGED as exc:
        raise UploadRejected("The mask could not be read; paint it again.") from exc
    mask = _mask_levels(image)
    if _band_range(mask)[1] == 0:
        raise UploadRejected(PAINT_SOMETHING)
    return _encode_png(mask)


def _read_limited(data: bytes | IO[bytes]) -> bytes:
    if isinstance(data, bytes | bytearray | memoryview):
        content = bytes(data)
        size: int | None = len(content)
    else:
        size = getattr(data, "size", None)
        if isinstance(size, int) and size > MAX_UPLOAD_BYTES:
            raise UploadRejected(_too_big(size))
        if getattr(data, "seekable", lambda: False)():
            data.seek(0)
        content = _read_at_most(data, MAX_UPLOAD_BYTES + 1)
        size = len(content) if len(content) <= MAX_UPLOAD_BYTES else None
    if not content:
        raise UploadRejected(EMPTY_MESSAGE)
    if size is None:
        raise UploadRejected(f"The file is larger than the {_limit_mb()} limit.")
    if size > MAX_UPLOAD_BYTES:
        raise UploadRejected(_too_big(size))
    return content


def _read_at_most(stream: IO[bytes], limit: int) -> bytes:
    chunks: list[bytes] = []
    remaining = limit
    while remaining > 0:
        chunk = stream.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _sniff(content: bytes) -> str:
    """The format named by the file's first bytes; never the file name or the client's content type."""
    if content.startswith(PNG_MAGIC):
        return "PNG"
    if content.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return "WEBP"
    head = content[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith((b"<?xml", b"<svg", b"<!doctype svg")) and b"<svg" in head:
        raise UploadRejected("SVG drawings are not accepted; export it as PNG.")
    if content.startswith((b"GIF87a", b"GIF89a")):
        raise UploadRejected("GIF images are not accepted; save the frame you want as PNG.")
    if content[4:8] == b"ftyp" and content[8:12] in {b"heic", b"heix", b"mif1", b"msf1", b"avif"}:
        raise UploadRejected("HEIC and AVIF photos are not accepted; export it as JPEG or PNG.")
    raise UploadRejected(f"This file is not a {ACCEPTED} image.")


def _check_pixels(size: tuple[int, int], what: str) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise UploadRejected(_damaged(what))
    if width * height > MAX_UPLOAD_PIXELS:
        side = math.isqrt(MAX_UPLOAD_PIXELS)
        raise UploadRejected(
            f"The {what} is {width}×{height} ({_megapixels(width * height)} megapixels); "
            f"the limit is {side}×{side} ({_megapixels(MAX_UPLOAD_PIXELS)} megapixels)."
        )


def _plain_mode(image: Image.Image) -> Image.Image:
    """RGB, or RGBA when the image carries any transparency (an alpha channel or a transparent colour)."""
    if image.mode.startswith("I"):
        # 16-bit greyscale: Pillow's conversion to 8 bits clips instead of scaling.
        image = image.convert("I").point(lambda value: value / 256).convert("L")
    return image.convert("RGBA" if image.has_transparency_data else "RGB")


def _to_srgb(image: Image.Image, icc_profile: bytes | None) -> Image.Image:
    """Apply an embedded colour profile, so the picture keeps its colours once the profile is dropped."""
    if not icc_profile:
        return image
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
        converted = ImageCms.profileToProfile(image, source, _SRGB, outputMode=image.mode)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return image  # a profile that does not fit the pixels (CMYK, broken): keep Pillow's conversion
    return converted or image


def _mask_levels(image: Image.Image) -> Image.Image:
    """Greyscale levels of a painted mask; transparent pixels count as unpainted."""
    if image.has_transparency_data:
        rgba = image.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        image = Image.alpha_composite(black, rgba)
    return image.convert("L")


def _band_range(band: Image.Image) -> tuple[int, int]:
    return cast(tuple[int, int], band.getextrema())


def _encode_png(image: Image.Image) -> bytes:
    image.info = {}  # no EXIF, text chunks, ICC profile or DPI: the PNG holds pixels only
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def quota_message(*, used: int, quota: int, size: int) -> str:
    """Why an upload does not fit the team's quota (TEAM_UPLOAD_QUOTA_MB), and what to do instead."""
    return (
        f"Your team's uploaded images take {_mb(used)} of its {_mb(quota)}, and this one ({_mb(size)}) "
        "does not fit. Start from a gallery image instead, or try again tomorrow: uploads that no job "
        "used are cleared after a day."
    )


def _mb(size: int) -> str:
    return f"{size / 2**20:.1f}".removesuffix(".0") + " MB"


def _damaged(what: str) -> str:
    return f"The {what} is incomplete or damaged; export it again."


def _too_big(size: int) -> str:
    return f"The file is {math.ceil(size * 10 / 2**20) / 10:.1f} MB; the limit is {_limit_mb()}."


def _limit_mb() -> str:
    return f"{MAX_UPLOAD_BYTES // 2**20} MB"


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1_000_000:.1f}".removesuffix(".0")
