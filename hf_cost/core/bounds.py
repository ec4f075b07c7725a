"""`Out`, the strict base of every result model, and the ranges every producer satisfies (a
share, a time, a count), stated once, so that a results file from elsewhere with an accuracy of 1e308 or a negative latency is refused when read, not
plotted; and `better()`, which says in a figure's schema which way is better."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

Share = Annotated[float, Field(ge=0, le=1)]
NonNegative = Annotated[float, Field(ge=0)]
Count = Annotated[int, Field(ge=0)]
Parameters = Annotated[int, Field(ge=0, lt=10**13, description="a model's parameter count (ten trillion at most)")]


def better(higher: bool, description: str, **bounds: Any) -> Any:
    """A field whose schema says which way is better (`higher_is_better`), read by selection."""
    return Field(description=description, json_schema_extra={"higher_is_better": higher}, **bounds)


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())
