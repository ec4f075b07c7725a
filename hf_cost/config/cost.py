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


class EnergySettings(Strict):
    """codecarbon around every step (process-level); off unless enabled. On a machine without
    power counters codecarbon estimates, and every reading says which way it was taken."""

    enabled: bool = Field(False, description="Track energy and CO2-eq of each step (needs hf_cost[energy]).")
    country_iso_code: str = Field("USA", description="Carbon intensity from codecarbon's offline table.")
    region: str | None = Field(None, description="A region of that country in the table (e.g. california).")


class CardBlock(Strict):
    """Update a model card's hf_cost sections at the end of the run. Only an existing README.md
    inside a `model_cards` folder is touched, and only between hf_cost's markers and in its
    metadata (model-index, co2_eq_emissions): a scenario file cannot point a run at other files."""

    path: str = Field(description="The card, relative to the scenario file: .../model_cards/NAME/README.md")
    candidate: str | None = Field(None, description="The candidate the card describes; default: the reference.")
