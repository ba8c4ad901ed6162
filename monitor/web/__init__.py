"""The review web app for regulators: flagged sites, claims in context, history, review decisions.

`create_app(cfg)` (in `monitor.web.app`) builds the FastAPI application that `clinicwatch serve` runs.
"""
