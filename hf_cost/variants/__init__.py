"""Building steps: each makes a named candidate from an earlier one (see registry.py)."""
