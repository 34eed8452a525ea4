"""Pure image operations on PNG bytes: sizes and fitting an init image to what an engine accepts."""

import io

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
