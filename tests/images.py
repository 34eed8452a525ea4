import io

from PIL import Image, ImageDraw


def png(width: int = 512, height: int = 512, *, mode: str = "RGB", colour: object = None) -> bytes:
    """A real PNG with some structure (a gradient and a disc), so that changes to it are measurable."""
    if colour is None:
        colour = {"L": 0, "RGBA": (40, 120, 200, 255)}.get(mode, (40, 120, 200))
    image = Image.new(mode, (width, height), colour)
    draw = ImageDraw.Draw(image)
    for x in range(0, width, 8):
        draw.line((x, 0, x, height), fill=(x * 255 // max(width, 1), 80, 160) if mode != "L" else x % 256)
    draw.ellipse(
        (width // 4, height // 4, width * 3 // 4, height * 3 // 4), fill="white" if mode != "L" else 255
    )
    return encode(image)


def encode(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def picture_bytes(data: bytes) -> bytes:
    """A PNG's encoded picture (its IDAT chunks), without the metadata chunks Studio adds to every file:
    the same picture, encoded the same way, whatever the file says of how it was made."""
    from generations.png_text import chunks

    return b"".join(bytes(chunk.body) for chunk in chunks(data) if chunk.type == b"IDAT")
