"""A pure ML library for the pipelines: dataset spec, CSV parsing, tabular helpers, metrics, the
blessing rule, model files and RunInference, artifact names. Never imports a pipeline; the
HTML reports are ``beam_pipelines.pages``."""
