"""Decide once, before any Hugging Face library is imported, whether the Hub is reachable.

The HF libraries read HF_HUB_OFFLINE at import time; without it an unreachable
Hub costs long retries. We honour a value the user set, else probe the Hub's host.
"""

from __future__ import annotations

import os
import socket
import sys
from urllib.parse import urlparse

_OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_EVALUATE_OFFLINE")


def configure_hub_access(force_offline: bool = False, quiet: bool = False) -> bool:
    """Set the offline variables when needed; return True when running offline."""
    if "transformers" in sys.modules or "datasets" in sys.modules:
        # Too late to change how they behave; report what they will do.
        return os.environ.get("HF_HUB_OFFLINE", "") in {"1", "true", "TRUE", "yes"}
    user_value = os.environ.get("HF_HUB_OFFLINE")
    if force_offline:
        offline = True
    elif user_value is not None:
        offline = user_value.lower() in {"1", "true", "yes", "on"}
    else:
        offline = not _hub_reachable()
        if offline and not quiet:
            print("Hugging Face Hub unreachable: running offline (HF_HUB_OFFLINE=1).", file=sys.stderr)
    if offline:
        for var in _OFFLINE_VARS:
            os.environ[var] = "1"
    return offline


def _hub_reachable(timeout_s: float = 2.0) -> bool:
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        with socket.create_connection((host, 443), timeout=timeout_s):
            return True
    except OSError:
        return False
