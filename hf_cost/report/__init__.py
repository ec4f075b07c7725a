"""The result schema and its writers (results.json, report.md)."""
