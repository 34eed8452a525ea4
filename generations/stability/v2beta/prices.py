"""Stable Image prices: one dated table, credits per successful result (notes §7; 1 credit = US$0.01).
Nothing is charged for a refused or failed request, nor for a filtered image (the sandbox's choice)."""

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
}
CREDIT_QUANTUM = Decimal("0.000001")


def price_of(key: str) -> Decimal:
    """The credits of `key` ("edit/erase", or "generate/sd3:<model>"), to six decimals as v1 keeps them."""
    return PRICES[key].quantize(CREDIT_QUANTUM)
