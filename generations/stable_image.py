"""Studio's side of the Stable Image (v2beta) API: the models the create form offers and the tools an
image's page offers.

Each is a thin layer over one contract `Operation` (generations/stability/v2beta/contract.py), which holds
every field with its default, limits and price. What is said here is only what Studio adds: a name, which
image the tool starts from, which fields a person fills, and how the job relates to its source. The form
fields, the stored job (`options`), the request sent, Re-run and Remix are all read from these, so a new
option is one line in the contract.
"""

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from generations.stability.v2beta import contract
from generations.stability.v2beta.contract import Operation
from generations.stability.v2beta.fields import Field, Kind

# What Studio always asks for, never the person: the format it stores (PNG keeps metadata and alpha).
OUTPUT_FORMAT = "png"
# Where a job keeps each image it sends (columns of GenerationJob); the mask is always "mask".
SOURCE_COLUMN, MASK_COLUMN, REFERENCE_COLUMN = "init_image", "mask_image", "reference_image"


@dataclass(frozen=True)
class Model:
    """A Stable Image generation model on the create form; `id` is kept as the job's engine_id."""

    id: str
    name: str
    operation: Operation
    sd3_model: str = ""  # generate/sd3's `model`
    blurb: str = ""

    @property
    def fixed(self) -> dict[str, Any]:
        """Values the model sets and the person does not choose."""
        return {"model": self.sd3_model} if self.sd3_model else {}

    @property
    def price(self) -> Decimal:
        return self.operation.price(self.fixed)

    def takes(self, name: str) -> bool:
        return name in self.operation.field_names

    @property
    def takes_image(self) -> bool:
        """Image-to-image: Ultra and SD 3.5 take an init image with a strength; Core does not."""
        return self.takes("image")

    @property
    def cfg_default(self) -> float | None:
        return contract.SD3_CFG_DEFAULTS.get(self.sd3_model) if self.takes("cfg_scale") else None


MODELS: dict[str, Model] = {
    model.id: model
    for model in (
        Model(
            "stable-image-ultra",
            "Stable Image Ultra",
            contract.ULTRA,
            blurb="The most detailed pictures, for print and hero images.",
        ),
        Model(
            "stable-image-core", "Stable Image Core", contract.CORE, blurb="Fast and affordable; the default."
        ),
        Model("sd3.5-large", "Stable Diffusion 3.5 Large", contract.SD3, "sd3.5-large"),
        Model("sd3.5-large-turbo", "Stable Diffusion 3.5 Large Turbo", contract.SD3, "sd3.5-large-turbo"),
        Model("sd3.5-medium", "Stable Diffusion 3.5 Medium", contract.SD3, "sd3.5-medium"),
        Model("sd3.5-flash", "Stable Diffusion 3.5 Flash", contract.SD3, "sd3.5-flash"),
    )
}
DEFAULT_MODEL = "stable-image-core"
# Variations of a picture whose model takes no image (Core, or a tool's result) are drawn by this one.
VARIATION_MODEL = "sd3.5-large"


def variation_model(engine_id: str) -> Model:
    """The model that draws variations of a picture made on `engine_id`: its own when it takes an image."""
    model = MODELS.get(engine_id)
    return model if model is not None and model.takes_image else MODELS[VARIATION_MODEL]


def model_of(engine_id: str) -> Model | None:
    return MODELS.get(engine_id)


# --- tools on an image -----------------------------------------------------------------------------------

# What a tool's job is, and how its images relate to the one it started from (GenerationJob choices).
EDIT, CONTROL, UPSCALE = "edit", "control", "upscale"


@dataclass(frozen=True)
class Tool:
    """One operation offered on an image's page: the image goes into `source`; the person fills `asks`."""

    slug: str
    operation: Operation
    group: str  # EDIT, CONTROL or UPSCALE: the job's kind and its images' relation to the source
    blurb: str
    source: str = "image"
    mask: bool = False  # painted on the image with the mask editor
    reference: str = ""  # a second image the person uploads (a style, a background)

    @property
    def title(self) -> str:
        return self.operation.title

    @property
    def asks(self) -> tuple[Field, ...]:
        """The fields the form shows, in the contract's order: all but the images and the output format."""
        return tuple(
            f for f in self.operation.fields if f.kind is not Kind.IMAGE and f.name != "output_format"
        )

    @property
    def takes_prompt(self) -> bool:
        return "prompt" in self.operation.field_names

    def image_columns(self) -> dict[str, str]:
        """Which job column keeps each image field this tool sends."""
        columns = {self.source: SOURCE_COLUMN}
        if self.mask:
            columns["mask"] = MASK_COLUMN
        if self.reference:
            columns[self.reference] = REFERENCE_COLUMN
        return columns


TOOLS: dict[str, Tool] = {
    tool.slug: tool
    for tool in (
        Tool("upscale-fast", contract.UPSCALE_FAST, UPSCALE, "Four times the size in seconds, no prompt."),
        Tool(
            "upscale-conservative",
            contract.UPSCALE_CONSERVATIVE,
            UPSCALE,
            "Up to 4 megapixels, keeping the picture as it is.",
        ),
        Tool(
            "upscale-creative",
            contract.UPSCALE_CREATIVE,
            UPSCALE,
            "Up to 4K, re-imagining fine detail from a prompt (takes a minute).",
        ),
        Tool("erase", contract.ERASE, EDIT, "Paint over what should go; it is filled in.", mask=True),
        Tool("inpaint", contract.INPAINT, EDIT, "Paint an area and say what goes there.", mask=True),
        Tool("outpaint", contract.OUTPAINT, EDIT, "Grow the canvas on any side and fill it in."),
        Tool("search-and-replace", contract.SEARCH_AND_REPLACE, EDIT, "Name a thing and what replaces it."),
        Tool("search-and-recolor", contract.SEARCH_AND_RECOLOR, EDIT, "Name a thing and its new colours."),
        Tool(
            "remove-background",
            contract.REMOVE_BACKGROUND,
            EDIT,
            "Keep the subject on a transparent background.",
        ),
        Tool(
            "replace-background-and-relight",
            contract.REPLACE_BACKGROUND_AND_RELIGHT,
            EDIT,
            "A new background and light for the subject (takes a minute).",
            source="subject_image",
            reference="background_reference",
        ),
        Tool("control-sketch", contract.CONTROL_SKETCH, CONTROL, "A new picture that follows its lines."),
        Tool("control-structure", contract.CONTROL_STRUCTURE, CONTROL, "A new picture with its layout."),
        Tool("control-style", contract.CONTROL_STYLE, CONTROL, "A new picture in its style."),
        Tool(
            "control-style-transfer",
            contract.CONTROL_STYLE_TRANSFER,
            CONTROL,
            "Its content in the style of another image you upload.",
            source="init_image",
            reference="style_image",
        ),
    )
}


def tool_of(operation_id: str) -> Tool | None:
    return next((tool for tool in TOOLS.values() if tool.operation.id == operation_id), None)


def operation_name(engine_id: str) -> str:
    """What a Stable Image job ran on, for people: its model, or its tool."""
    if model := MODELS.get(engine_id):
        return model.name
    if operation := contract.OPERATIONS.get(engine_id):
        return operation.title
    return ""


def columns_of(operation_id: str) -> dict[str, str]:
    """Which job column keeps each image a Stable Image operation sends (a generation's init image)."""
    if tool := tool_of(operation_id):
        return tool.image_columns()
    return {"image": SOURCE_COLUMN}
