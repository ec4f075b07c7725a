"""The leaf layer: names, the Candidate interface and the result types every layer shares.

Nothing here imports another hf_cost package, so any layer may import it.
"""
