"""{% image_metadata image %}: the metadata a stored PNG carries, with copy buttons (the image page)."""

import logging
from typing import Any

from django import template

from generations.metadata import metadata_of, parameters_text
from generations.models import GalleryImage

register = template.Library()
logger = logging.getLogger(__name__)


@register.inclusion_tag("generations/image_metadata.html")
def image_metadata(image: GalleryImage) -> dict[str, Any]:
    try:
        metadata = metadata_of(image)
    except OSError:
        # The job's input image is gone from storage: the request cannot be rebuilt, the parameters can.
        logger.warning("image %s: the job's input file is missing", image.pk)
        return {"image": image, "parameters": parameters_text(image.job, seed=image.seed), "studio_json": ""}
    return {"image": image, "parameters": metadata.parameters, "studio_json": metadata.studio_json}
