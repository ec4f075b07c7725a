"""Quality scoring: bundled `evaluate` metric modules, loaded offline by path, and bootstrap CIs.

``metric_loader.load_metric`` finds a metric; ``scoring.score_classification`` turns predicted and
reference label ids into a JSON-ready report. Heavy imports (evaluate, sklearn) happen inside the
functions that need them.
"""
