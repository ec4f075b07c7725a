"""Hugging Face model cards (README.md) that hf_cost updates in place.

`card_file` owns the file mechanics: marked body sections, hf_cost's own eval results in the
model-index, atomic writes. Everything in a card that hf_cost did not write is kept byte for byte.
"""
