"""Stability's prices, both APIs: one dated table, credits per successful result (1 credit = US$0.01).
Stable Image from the v2beta notes §7; v1 SDXL from §10 (source S2). Nothing is charged for a refused or
failed request, nor for a filtered image (the sandbox's choice). v1's retired engines (SD 1.6, 2.1, the
upscalers) keep their 2023 formulas in contract.py: no current document prices them."""

from datetime import date
from decimal import Decimal

PRICES_AS_OF = date(2026, 9, 22)  # the official document captured that day (notes §13, S1)
PRICES: dict[str, Decimal] = {
    "generate/ultra": Decimal("8"),
    "generate/core": Decimal("3"),
    "generate/sd3:sd3.5-large": Decimal("6.5"),
    "generate/sd3:sd3.5-large-turbo": Decimal("4"),
    "generate/sd3:sd3.5-medium": Decimal("3.5"),
    "generate/sd3:sd3.5-flash": Decimal("2.5"),
    "upscale/fast": Decimal("2"),
    "upscale/conservative": Decimal("40"),
    "upscale/creative": Decimal("60"),
    "edit/erase": Decimal("5"),
    "edit/inpaint": Decimal("5"),
    "edit/outpaint": Decimal("4"),
    "edit/search-and-replace": Decimal("5"),
    "edit/search-and-recolor": Decimal("5"),
    "edit/remove-background": Decimal("5"),
    "edit/replace-background-and-relight": Decimal("8"),
    "control/sketch": Decimal("5"),
    "control/structure": Decimal("5"),
    "control/style": Decimal("5"),
    "control/style-transfer": Decimal("8"),
    # v1 SDXL (1.0, and 0.9 with it: no price of its own is published): this up to SDXL_PRICE_STEPS steps,
    # in proportion to the steps above. The 2023 table (1.6 at 30 steps) is gone.
    "v1/sdxl": Decimal("0.9"),
}
SDXL_PRICE_STEPS = 30
CREDIT_QUANTUM = Decimal("0.000001")


def price_of(key: str) -> Decimal:
    """The credits of `key` ("edit/erase", or "generate/sd3:<model>"), to six decimals as v1 keeps them."""
    return PRICES[key].quantize(CREDIT_QUANTUM)
