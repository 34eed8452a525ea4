from django.apps import AppConfig


class GenerationsConfig(AppConfig):
    name = "generations"

    def ready(self) -> None:
        from PIL import Image

        from generations.uploads import MAX_UPLOAD_PIXELS

        # Pillow warns above this and refuses above twice it; uploads.clean_upload refuses anything over it
        # from the header first, so this guards every other Image.open in the process.
        Image.MAX_IMAGE_PIXELS = MAX_UPLOAD_PIXELS
