"""hf_cost: what a Hugging Face checkpoint really costs, measured the MLPerf way."""

__version__ = "0.1.0"
