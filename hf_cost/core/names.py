"""Names every layer shares."""

BASE = "base"  # the name of the scenario file's own checkpoint among the candidates
