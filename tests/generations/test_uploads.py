import base64
import io
import struct
import zlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile, UploadedFile
from PIL import Image, ImageCms, ImageDraw, ImageFile, PngImagePlugin

from generations.uploads import MAX_UPLOAD_BYTES, MAX_UPLOAD_PIXELS, UploadRejected, clean_mask, clean_upload
from tests.bad_uploads import PNG_MAGIC, bad_uploads, huge_png
from tests.images import decode, encode, png

BAD_UPLOADS = bad_uploads()
SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
RED, GREEN, BLUE = (220, 20, 20), (20, 220, 20), (20, 20, 220)


def encoded(image: Image.Image, image_format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def chunk_types(data: bytes) -> list[bytes]:
    """The chunk types of a PNG, in order, with each chunk's CRC checked."""
    assert data.startswith(PNG_MAGIC)
    position, types = len(PNG_MAGIC), []
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind, body = data[position + 4 : position + 8], data[position + 8 : position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length : position + 12 + length])
        assert crc == zlib.crc32(kind + body), kind
        types.append(kind)
        position += 12 + length
    return types


def rejection(data: bytes, **options: str) -> str:
    with pytest.raises(UploadRejected) as caught:
        clean_upload(data, **options)
    return caught.value.message


def mask_url(image: Image.Image) -> str:
    return "data:image/png;base64," + base64.b64encode(encode(image)).decode()


def painted(size: tuple[int, int], mode: str = "RGBA", background: object = (0, 0, 0, 255)) -> Image.Image:
    """A mask as the editor's canvas exports it: a white stroke across the middle of a black field."""
    image = Image.new(mode, size, background)
    width, height = size
    ImageDraw.Draw(image).line((0, height // 2, width, height // 2), fill="white", width=20)
    return image


# --- refused files ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("as_uploaded_file", [False, True], ids=["bytes", "uploaded-file"])
@pytest.mark.parametrize(
    ("filename", "content", "message"),
    [case[1:] for case in BAD_UPLOADS],
    ids=[case[0] for case in BAD_UPLOADS],
)
def test_each_bad_file_is_refused_with_a_message_that_says_why(filename, content, message, as_uploaded_file):
    upload = SimpleUploadedFile(filename, content, content_type="image/png") if as_uploaded_file else content
    with pytest.raises(UploadRejected) as caught:
        clean_upload(upload)
    assert message in caught.value.message
    assert str(caught.value) == caught.value.message


def test_a_huge_png_is_refused_from_its_header_without_decoding_a_pixel(monkeypatch):
    content = huge_png(20_000, 20_000)
    # It is a real, complete PNG: every chunk's CRC holds and its pixel stream has all 20000 rows.
    assert chunk_types(content) == [b"IHDR", b"IDAT", b"IEND"]
    idat_start = len(PNG_MAGIC) + 12 + 13 + 8
    (idat_length,) = struct.unpack(">I", content[idat_start - 8 : idat_start - 4])
    idat, stream = content[idat_start : idat_start + idat_length], zlib.decompressobj()
    inflated = sum(len(stream.decompress(idat[start : start + 4096])) for start in range(0, len(idat), 4096))
    assert stream.eof and inflated == 20_000 * (1 + 20_000 // 8)  # each row: a filter byte and 2500 bytes

    def no_decoding(self):
        raise AssertionError("the pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    assert rejection(content) == (
        "The image is 20000×20000 (400 megapixels); the limit is 4096×4096 (16.8 megapixels)."
    )


@pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")
def test_an_image_just_over_the_pixel_limit_is_refused_though_pillow_would_only_warn():
    assert Image.MAX_IMAGE_PIXELS < 4097 * 4096 < 2 * Image.MAX_IMAGE_PIXELS  # Pillow would only warn
    assert rejection(huge_png(4097, 4096)) == (
        "The image is 4097×4096 (16.8 megapixels); the limit is 4096×4096 (16.8 megapixels)."
    )


@pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")
def test_an_image_exactly_at_the_pixel_limit_is_accepted_and_kept_at_the_largest_useful_size():
    clean = clean_upload(huge_png(4096, 4096))
    assert (clean.width, clean.height, clean.has_alpha) == (2048, 2048, False)
    assert decode(clean.png).size == (2048, 2048)


def test_a_large_photo_keeps_its_shape_when_it_is_scaled_down():
    clean = clean_upload(encoded(Image.new("RGB", (4032, 3024), (90, 120, 150)), "JPEG"))
    assert (clean.width, clean.height) == (2048, 1536)


def test_pillow_refuses_images_over_the_upload_limit_everywhere_in_the_process():
    assert Image.MAX_IMAGE_PIXELS == MAX_UPLOAD_PIXELS == 4096 * 4096
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_an_oversized_uploaded_file_is_refused_from_its_size_without_being_read():
    class Unreadable(io.BytesIO):
        def read(self, size=-1):
            raise AssertionError("the file was read")

    upload = UploadedFile(Unreadable(), name="big.png", content_type="image/png", size=30 * 2**20 + 1)
    assert rejection(upload) == "The file is 30.1 MB; the limit is 10 MB."


def test_a_stream_of_unknown_size_is_read_no_further_than_the_limit():
    class Endless(io.RawIOBase):
        served = 0

        def readable(self):
            return True

        def readinto(self, buffer):
            buffer[:] = bytes(len(buffer))
            self.served += len(buffer)
            return len(buffer)

    stream = Endless()
    assert rejection(stream) == "The file is larger than the 10 MB limit."
    assert stream.served == MAX_UPLOAD_BYTES + 1


def test_a_file_of_exactly_the_byte_limit_is_not_refused_for_its_size():
    content = encode(Image.new("RGB", (8, 8), RED))
    padded = content + bytes(MAX_UPLOAD_BYTES - len(content))  # Pillow ignores bytes after IEND
    assert clean_upload(SimpleUploadedFile("padded.png", padded)).width == 8
    assert rejection(padded + b"\0") == "The file is 10.1 MB; the limit is 10 MB."


def test_a_png_with_a_damaged_header_is_refused_as_damaged():
    assert (
        rejection(PNG_MAGIC + b"not a header at all")
        == "The image is incomplete or damaged; export it again."
    )


def test_messages_name_the_image_as_the_caller_does():
    whole = png(64, 64)
    assert (
        rejection(whole[:-40], what="init image")
        == "The init image is incomplete or damaged; export it again."
    )


# --- accepted images -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image_format", "options"), [("PNG", {}), ("JPEG", {"quality": 95}), ("WEBP", {"lossless": True})]
)
def test_png_jpeg_and_webp_are_accepted_and_re_encoded_as_png(image_format, options):
    original = Image.new("RGB", (320, 192), BLUE)
    ImageDraw.Draw(original).rectangle((0, 0, 159, 191), fill=RED)
    clean = clean_upload(encoded(original, image_format, **options))
    assert clean.png.startswith(PNG_MAGIC)
    result = decode(clean.png)
    assert (result.format, result.mode, result.size) == ("PNG", "RGB", (320, 192))
    assert (clean.width, clean.height, clean.has_alpha) == (320, 192, False)
    for point, colour in (((40, 96), RED), ((280, 96), BLUE)):
        assert all(abs(a - b) <= 4 for a, b in zip(result.getpixel(point), colour, strict=True))


def test_the_format_is_read_from_the_bytes_not_the_name_or_content_type():
    jpeg = encoded(Image.new("RGB", (64, 48), GREEN), "JPEG")
    clean = clean_upload(SimpleUploadedFile("photo.gif", jpeg, content_type="image/gif"))
    assert (clean.width, clean.height) == (64, 48)


def test_an_uploaded_file_already_read_is_read_again_from_the_start():
    upload = SimpleUploadedFile("photo.png", png(64, 64), content_type="image/png")
    upload.read(100)
    assert clean_upload(upload).width == 64


@pytest.mark.parametrize("image_format", ["PNG", "JPEG", "WEBP"])
def test_exif_text_chunks_and_colour_profiles_are_stripped(image_format):
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    exif[0x013B] = "Jane Secret"  # Artist
    options: dict[str, object] = {"exif": exif.tobytes(), "icc_profile": SRGB_ICC}
    if image_format == "PNG":
        text = PngImagePlugin.PngInfo()
        text.add_text("Author", "Jane Secret")
        text.add_text("Comment", "taken at 12 Secret Lane", zip=True)
        text.add_itxt("Location", "51.5N 0.1W")
        options |= {"pnginfo": text, "dpi": (300, 300)}
    content = encoded(Image.new("RGB", (64, 64), GREEN), image_format, **options)
    assert b"Jane Secret" in content

    clean = clean_upload(content)
    assert chunk_types(clean.png) == [b"IHDR", b"IDAT", b"IEND"]
    assert b"Secret" not in clean.png
    assert decode(clean.png).info == {}


def test_exif_orientation_is_applied_to_the_pixels():
    stored = Image.new("RGB", (200, 100), BLUE)
    ImageDraw.Draw(stored).rectangle((0, 0, 49, 99), fill=RED)  # the left quarter of the stored pixels
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the camera was turned; show the picture turned 90° clockwise
    clean = clean_upload(encoded(stored, "JPEG", exif=exif.tobytes(), quality=95))

    assert (clean.width, clean.height) == (100, 200)
    upright = decode(clean.png)
    assert upright.size == (100, 200)
    assert upright.getpixel((50, 20))[0] > 180  # the red quarter is now on top
    assert upright.getpixel((50, 180))[2] > 180


def test_alpha_is_kept_for_an_rgba_png():
    original = Image.new("RGBA", (64, 64), (*RED, 255))
    ImageDraw.Draw(original).rectangle((0, 0, 31, 63), fill=(*BLUE, 0))
    clean = clean_upload(encode(original))
    result = decode(clean.png)
    assert clean.has_alpha is True
    assert result.mode == "RGBA"
    assert result.getpixel((10, 10))[3] == 0
    assert result.getpixel((50, 10)) == (*RED, 255)


def test_a_palette_png_with_a_transparent_colour_keeps_its_transparency():
    original = Image.new("P", (64, 64), 1)
    original.putpalette([0, 0, 0, *RED])
    ImageDraw.Draw(original).rectangle((0, 0, 31, 63), fill=0)
    clean = clean_upload(encoded(original, "PNG", transparency=0))
    result = decode(clean.png)
    assert clean.has_alpha is True
    assert result.mode == "RGBA"
    assert result.getpixel((10, 10))[3] == 0
    assert result.getpixel((50, 10)) == (*RED, 255)


def test_an_opaque_rgba_png_has_no_alpha():
    clean = clean_upload(encode(Image.new("RGBA", (64, 64), (*GREEN, 255))))
    assert clean.has_alpha is False
    assert decode(clean.png).mode == "RGB"


def test_a_sixteen_bit_greyscale_png_keeps_its_tones():
    clean = clean_upload(encode(Image.new("I;16", (16, 16), 40_000)))
    assert decode(clean.png).getpixel((8, 8)) == (156, 156, 156)


@pytest.mark.parametrize(("image_format", "options"), [("WEBP", {"lossless": True}), ("PNG", {})])
def test_an_animated_image_gives_its_first_frame(image_format, options):
    frames = [Image.new("RGB", (48, 32), colour) for colour in (RED, GREEN, BLUE)]
    content = encoded(
        frames[0], image_format, save_all=True, append_images=frames[1:], duration=100, **options
    )
    assert getattr(Image.open(io.BytesIO(content)), "n_frames", 1) == 3

    clean = clean_upload(content)
    result = decode(clean.png)
    assert b"acTL" not in chunk_types(clean.png)
    assert getattr(result, "n_frames", 1) == 1
    assert result.getpixel((24, 16)) == RED


# --- masks -----------------------------------------------------------------------------------------------


def test_a_painted_mask_becomes_a_greyscale_png_where_white_means_change():
    mask = decode(clean_mask(mask_url(painted((128, 96))), size=(128, 96)))
    assert (mask.format, mask.mode, mask.size) == ("PNG", "L", (128, 96))
    assert mask.getpixel((64, 48)) == 255
    assert mask.getpixel((64, 5)) == 0


def test_unpainted_transparent_parts_of_a_mask_are_kept():
    stroke_only = painted((64, 64), background=(255, 255, 255, 0))
    mask = decode(clean_mask(mask_url(stroke_only), size=(64, 64)))
    assert (mask.getpixel((32, 32)), mask.getpixel((32, 5))) == (255, 0)


def jpeg_data_url() -> str:
    return (
        "data:image/jpeg;base64," + base64.b64encode(encoded(Image.new("L", (64, 64), 255), "JPEG")).decode()
    )


@pytest.mark.parametrize(
    ("data_url", "message"),
    [
        (lambda: mask_url(Image.new("L", (64, 64), 0)), "Paint over the part of the image to change."),
        (
            lambda: mask_url(painted((300, 200))),
            "The mask is 300×200 but the image is 64×64; paint it again.",
        ),
        (jpeg_data_url, "The mask is not a PNG image; paint it again."),
        (lambda: "data:image/png;base64," + jpeg_data_url().split(",")[1], "The mask is not a PNG image"),
        (lambda: "", "Paint over the part of the image to change."),  # erased to nothing
        (lambda: "data:image/png;base64,not*base64!", "The mask could not be read; paint it again."),
        (
            lambda: "data:image/png;base64," + base64.b64encode(encode(painted((64, 64)))[:-30]).decode(),
            "The mask could not be read; paint it again.",
        ),
    ],
    ids=["all-black", "wrong-size", "jpeg", "jpeg-called-png", "empty", "garbage-base64", "cut-off-png"],
)
def test_a_mask_that_cannot_be_used_is_refused_with_a_message(data_url, message):
    with pytest.raises(UploadRejected) as caught:
        clean_mask(data_url(), size=(64, 64))
    assert message in caught.value.message
