"""Checkpoint selection: from measured candidates (possibly from several results files and
machines), constraints and ordered objectives, pick a recommendation honestly.

``constraints`` holds the user's spec (limits checked on the conservative CI bound by
default); ``pareto`` computes the frontier, the feasible set and a CI-aware recommendation
(overlapping CIs are ties, broken only by later objectives, never silently); ``plot`` draws it.
"""
