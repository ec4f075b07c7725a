"""Inputs: datasets through `datasets`, and the tokenised performance sample set."""
