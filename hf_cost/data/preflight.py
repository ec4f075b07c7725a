"""Check the performance sample set's dataset before any weights load (fail fast).

The steps' own data (train sets, scored datasets, periods) are checked by each kind's
`check` (hf_cost/steps/); this is the part every run shares: `inputs.dataset`.
"""

from __future__ import annotations

from typing import Any


def check_inputs(suite: Any) -> None:
    """Load `inputs.dataset` (when the inputs are a dataset): columns exist, and empty cells
    are refused here under `missing: error`."""
    from hf_cost.data.selection import narrow_rows
    from hf_cost.data.sources import load_split, require_columns

    spec = getattr(suite.inputs, "dataset", None)
    if spec is None:
        return
    ds = load_split(spec, "inputs.dataset")
    columns = {"text_column": spec.text_column, "text_pair_column": spec.text_pair_column}
    require_columns(ds, columns, "inputs.dataset")
    narrow_rows(ds, spec, "inputs.dataset", columns)
