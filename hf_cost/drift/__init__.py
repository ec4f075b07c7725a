"""Drift across dated periods: binning, decay statistics, input shift, label-free estimates."""
