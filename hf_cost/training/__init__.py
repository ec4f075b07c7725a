"""Training through Accelerate, below the steps that train (fine_tune, distill).

session.py: the context, data, seeded runs and saving of a training step; result.py: its typed
result; loop.py: one run; olympic.py: MLPerf-Training scoring; fine_tune.py: fine_tune's
session; teacher.py, student.py, kd_loss.py: what distillation adds; importance.py: prune's
head and neuron importance. Nothing here imports hf_cost.steps.
"""
