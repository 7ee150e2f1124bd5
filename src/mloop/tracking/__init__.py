"""Experiment tracking: runs, params, metrics, tags, artifacts, search, autolog."""
