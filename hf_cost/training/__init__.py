"""Fine-tuning through Accelerate: the training loop and MLPerf-Training scoring."""
