"""Text chunks of a PNG byte stream, read and written without decoding or re-encoding a pixel.

Pillow's PngInfo writes text only as part of a full save, which re-compresses the pixels (slow, and not
byte-identical). A PNG is a signature and a list of chunks, each with its own CRC, and text chunks may sit
anywhere between IHDR and IEND; so new ones are spliced in before the first IDAT (where Pillow and A1111
put theirs, and where readers that stop at the pixels still see them), and every other chunk is copied as
it came. See https://www.w3.org/TR/png-3/#11textinfo for tEXt, zTXt and iTXt.
"""

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

SIGNATURE = b"\x89PNG\r\n\x1a\n"
TEXT_TYPES = (b"tEXt", b"zTXt", b"iTXt")
MAX_CHUNKS = 100_000  # a real PNG has a few thousand at most; more is a file built to be slow
MAX_TEXT_BYTES = 1024 * 1024  # inflated text, so a small compressed chunk cannot expand without bound


class PngDamaged(ValueError):
    """Not a PNG, or its chunk list cannot be walked; `message` is a sentence for a person."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Chunk:
    type: bytes
    start: int  # offset of the chunk's length field
    end: int  # offset just past its CRC
    body: memoryview
    crc: int

    @property
    def keyword(self) -> str:
        """A text chunk's keyword ("" for other chunks)."""
        if self.type not in TEXT_TYPES:
            return ""
        return bytes(self.body[:80]).split(b"\0", 1)[0].decode("latin-1")


def chunks(data: bytes) -> Iterator[Chunk]:
    """The chunks up to and including IEND, checked for length and type (pixels are not looked at)."""
    if not data.startswith(SIGNATURE):
        raise PngDamaged("This is not a PNG file.")
    view = memoryview(data)
    offset, count = len(SIGNATURE), 0
    while True:
        if offset + 12 > len(data) or count >= MAX_CHUNKS:
            raise PngDamaged("This PNG is damaged: it ends before its last chunk.")
        (length,) = struct.unpack_from(">I", data, offset)
        kind = bytes(view[offset + 4 : offset + 8])
        end = offset + 12 + length
        if end > len(data) or not kind.isalpha():
            raise PngDamaged("This PNG is damaged: one of its chunks cannot be read.")
        (crc,) = struct.unpack_from(">I", data, end - 4)
        yield Chunk(kind, offset, end, view[offset + 8 : end - 4], crc)
        if kind == b"IEND":
            return
        offset, count = end, count + 1


def read_text(chunk: Chunk) -> str:
    """The text of a tEXt, zTXt or iTXt chunk; PngDamaged when its CRC, layout or encoding is wrong."""
    body = bytes(chunk.body)
    if zlib.crc32(chunk.type + body) != chunk.crc:
        raise PngDamaged(f"The PNG's “{chunk.keyword}” text is damaged (its checksum does not match).")
    try:
        _keyword, rest = body.split(b"\0", 1)
        if chunk.type == b"tEXt":
            return rest.decode("latin-1")
        if chunk.type == b"zTXt":
            return _inflate(rest[1:]).decode("latin-1")
        compressed, rest = rest[0], rest[2:]
        _language, _translated, text = rest.split(b"\0", 2)
        return (_inflate(text) if compressed else text).decode("utf-8")
    except (ValueError, IndexError, zlib.error) as exc:  # UnicodeDecodeError is a ValueError
        raise PngDamaged(f"The PNG's “{chunk.keyword}” text cannot be read.") from exc


def _inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj()
    text = inflater.decompress(data, MAX_TEXT_BYTES)
    if inflater.unconsumed_tail:
        raise ValueError("text too long")
    return text


def texts(data: bytes) -> dict[str, Chunk]:
    """The text chunks by keyword (the first of each), unread: a reader decodes only those it wants."""
    found: dict[str, Chunk] = {}
    for chunk in chunks(data):
        if chunk.type in TEXT_TYPES:
            found.setdefault(chunk.keyword, chunk)
    return found


def text_chunk(keyword: str, text: str, *, utf8: bool = False) -> bytes:
    """A tEXt chunk when the text is Latin-1 (as Pillow, and so A1111, writes it), else an uncompressed
    iTXt; `utf8` asks for iTXt always."""
    name = keyword.encode("latin-1")
    try:
        if utf8:
            raise UnicodeEncodeError("latin-1", text, 0, 0, "iTXt asked for")
        kind, body = b"tEXt", name + b"\0" + text.encode("latin-1")
    except UnicodeEncodeError:
        # keyword, NUL, compression flag 0, method 0, empty language tag, NUL, empty translated keyword, NUL
        kind, body = b"iTXt", name + b"\0\0\0\0\0" + text.encode("utf-8")
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def with_texts(png: bytes, new_chunks: dict[str, bytes]) -> bytes:
    """The PNG with the given text chunks (keyword -> encoded chunk) before its first IDAT, replacing any
    text chunks of the same keywords; every other byte is copied as it was."""
    parts: list[bytes | memoryview] = [SIGNATURE]
    view = memoryview(png)
    inserted = False
    for chunk in chunks(png):
        if chunk.type == b"IDAT" and not inserted:
            parts.extend(new_chunks.values())
            inserted = True
        if chunk.type in TEXT_TYPES and chunk.keyword in new_chunks:
            continue
        parts.append(view[chunk.start : chunk.end])
    if not inserted:
        raise PngDamaged("This PNG has no image data.")
    return b"".join(parts)
