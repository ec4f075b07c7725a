"""What a team pays and plans to run: prices, the workload and a budget (for cost figures).

Kept apart from schema.py; `Suite` holds one `Workload` and one `Budget`, `Hardware` the price.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from hf_cost.config.base import Strict
from hf_cost.config.fields import PosFloat, PosInt


class Workload(Strict):
    """The inference and training a team plans: what the cost figures are scaled to."""

    inferences_per_day: PosFloat | None = Field(None, description="Inferences served per day.")
    training_samples: PosInt | None = Field(
        None, description="Samples in one training epoch (N); default: what each training step processed."
    )
    epochs: PosFloat = Field(1.0, description="Epochs per training run.")


class Budget(Strict):
    """What a team can spend; a verdict per candidate says whether it fits."""

    serving_per_month: PosFloat | None = Field(None, description="Serving the workload for 30 days.")
    training_per_run: PosFloat | None = Field(None, description="One training run of the workload.")


def check_currency(value: str) -> str:
    if not (len(value) == 3 and value.isalpha() and value.isupper()):
        raise ValueError(f"{value!r} is not an ISO 4217 code such as USD or EUR")
    return value


class Pricing(Strict):
    """hardware.price_per_hour and its currency."""

    price_per_hour: PosFloat | None = Field(None, description="What an hour of this machine costs.")
    currency: str = Field("USD", description="ISO 4217 code of price_per_hour and the budget.")

    @field_validator("currency")
    @classmethod
    def _currency(cls, v: str) -> str:
        return check_currency(v)
