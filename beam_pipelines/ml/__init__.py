"""Reusable pieces of the ML pipelines: dataset spec, CSV parsing, TFDV, models, blessing."""
