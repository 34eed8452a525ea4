"""Files a person might try as an init image that Studio must refuse, each with the words that say why.

Shared by the unit tests of generations.uploads and the view tests, so both refuse the same files.
"""

import io
import struct
import zlib

from PIL import Image

from tests.images import png

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

SVG = b"""<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="512" height="512" viewBox="0 0 512 512">
  <circle cx="256" cy="256" r="200" fill="teal"/>
</svg>
"""
HTML = b"""<!DOCTYPE html>
<html lang="en"><head><title>My picture</title></head>
<body><img src="picture.png" alt="A picture"></body></html>
"""


def bad_uploads() -> list[tuple[str, str, bytes, str]]:
    """(case id, file name, content, a fragment of the message that refuses it)."""
    whole = png(256, 256)
    return [
        ("empty-file", "empty.png", b"", "The file is empty. Choose a PNG, JPEG or WebP image."),
        (
            "text-named-png",
            "holiday.png",
            b"Shopping list: bread, milk, a new camera.\n",
            "This file is not a PNG, JPEG or WebP image.",
        ),
        ("svg-drawing", "drawing.svg", SVG, "SVG drawings are not accepted; export it as PNG."),
        ("html-page", "page.html", HTML, "This file is not a PNG, JPEG or WebP image."),
        ("gif-animation", "animation.gif", gif(), "GIF images are not accepted"),
        ("heic-photo", "IMG_0042.HEIC", heic_header(), "HEIC and AVIF photos are not accepted"),
        (
            "truncated-png",
            "cut-off.png",
            whole[: len(whole) // 2],
            "is incomplete or damaged; export it again.",
        ),
        (
            "20000x20000-png",
            "huge.png",
            huge_png(20_000, 20_000),
            "is 20000×20000 (400 megapixels); the limit is 4096×4096 (16.8 megapixels).",
        ),
        ("30-mb-file", "big.png", thirty_megabytes(), "The file is 30.0 MB; the limit is 10 MB."),
    ]


def huge_png(width: int, height: int) -> bytes:
    """A complete, valid 1-bit greyscale PNG of black pixels, written chunk by chunk.

    Pillow cannot save it without first holding width × height pixels; all-zero rows compress to almost
    nothing, so writing the chunks by hand costs a fraction of a second and about 50 KB per 20000².
    """
    row = bytes(1 + (width + 7) // 8)  # filter type 0, then the packed bits
    compressor = zlib.compressobj()
    rows_per_block = 1000
    blocks = [
        compressor.compress(row * min(rows_per_block, height - start))
        for start in range(0, height, rows_per_block)
    ]
    pixels = b"".join(blocks) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # bit depth 1, greyscale, no interlace
    return PNG_MAGIC + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", pixels) + png_chunk(b"IEND", b"")


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def thirty_megabytes() -> bytes:
    """A PNG signature followed by 30 MiB of padding: refused for its size before anything else is read."""
    return PNG_MAGIC + bytes(30 * 2**20 - len(PNG_MAGIC))


def gif() -> bytes:
    frames = [Image.new("P", (64, 64), index) for index in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100)
    return buffer.getvalue()


def heic_header() -> bytes:
    """The start of an iPhone photo: an ISO base media `ftyp` box with the HEIC brand."""
    return struct.pack(">I", 24) + b"ftypheic" + bytes(4) + b"mif1heic" + bytes(64)
