"""Finding, importing and loading checkpoints."""
