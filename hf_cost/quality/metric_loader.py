"""Find an `evaluate` metric: the bundled ones by path, anything else on the Hugging Face Hub.

The four classification metrics, ``perplexity`` (from per-document NLL sums), ``exact_match``
(strings), ``rouge`` and ``chrf`` (free text, through rouge-score and sacrebleu) ship inside the package (``quality/metrics/<name>/<name>.py``) so scoring works with no
network. Any other name goes to ``evaluate.load`` unchanged.

evaluate 0.4.6 has its own offline switch, ``HF_EVALUATE_OFFLINE``, read once at import; it does
not look at ``HF_HUB_OFFLINE``. So when either variable is set we switch evaluate's flag on for the
call: it then skips the network and falls back to its module cache, instead of trying the Hub
(which, without a network, can take as long as the connection timeout).
"""

from __future__ import annotations

import contextlib
import difflib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hf_cost.errors import UserError

if TYPE_CHECKING:
    import evaluate

BUNDLED = ("accuracy", "f1", "precision", "recall", "perplexity", "exact_match", "rouge", "chrf")
METRICS_DIR = Path(__file__).resolve().parent / "metrics"

_TRUE = frozenset({"1", "ON", "YES", "TRUE"})
_OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_EVALUATE_OFFLINE")


def bundled_path(name: str) -> Path:
    """The script of bundled metric ``name``: ``quality/metrics/<name>/<name>.py``."""
    if name not in BUNDLED:
        raise KeyError(f"{name!r} is not a bundled metric; bundled: {', '.join(BUNDLED)}")
    return METRICS_DIR / name / f"{name}.py"


def hub_offline() -> bool:
    """True when HF_HUB_OFFLINE or HF_EVALUATE_OFFLINE is set to a true value (1, ON, YES, TRUE)."""
    return any(os.environ.get(var, "").upper() in _TRUE for var in _OFFLINE_VARS)


def load_metric(name: str, **load_kwargs: Any) -> evaluate.EvaluationModule:
    """Load metric ``name``: bundled names from the package, others through ``evaluate.load``.

    Modules are loaded with ``keep_in_memory=True`` (no Arrow cache files) unless ``load_kwargs``
    says otherwise. Raises UserError, one line, when a non-bundled metric cannot be found: offline
    and not in evaluate's cache, or not on the Hub.
    """
    import evaluate

    load_kwargs.setdefault("keep_in_memory", True)
    offline = hub_offline()
    try:
        if name in BUNDLED:
            return evaluate.load(str(bundled_path(name)), **load_kwargs)
        with _evaluate_offline(evaluate, offline):
            return evaluate.load(name, **load_kwargs)
    except PermissionError as exc:
        raise UserError(
            f"cannot load metric {name!r}: evaluate's cache is not writable ({exc}); "
            "point HF_HOME at a writable directory"
        ) from None
    except OSError as exc:  # FileNotFoundError, ConnectionError, requests' errors
        if name in BUNDLED:
            raise  # a broken install, not a user mistake: keep the traceback
        raise UserError(_not_found_message(name, offline)) from exc


def _not_found_message(name: str, offline: bool) -> str:
    bundled = ", ".join(BUNDLED)
    if name.endswith(".py") or os.path.isdir(name):
        return (
            f"metric {name!r}: no metric script there (a local metric is a .py file, or a directory "
            f"d holding d.py); bundled: {bundled}"
        )
    close = difflib.get_close_matches(name, BUNDLED, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    if offline:
        return (
            f"metric {name!r} is not bundled and the Hugging Face Hub is offline "
            f"(HF_HUB_OFFLINE/HF_EVALUATE_OFFLINE) with no cached copy; bundled: {bundled}{hint}"
        )
    return (
        f"metric {name!r} is not bundled and could not be loaded from the Hugging Face Hub "
        f"(not there, or no network); bundled: {bundled}{hint}"
    )


@contextlib.contextmanager
def _evaluate_offline(evaluate_module: Any, offline: bool) -> Iterator[None]:
    """Turn evaluate's own offline flag on for the duration of one load, when ``offline``."""
    config = evaluate_module.config
    saved = config.HF_EVALUATE_OFFLINE
    config.HF_EVALUATE_OFFLINE = saved or offline
    try:
        yield
    finally:
        config.HF_EVALUATE_OFFLINE = saved
