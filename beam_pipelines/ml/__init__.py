"""A pure ML library for the pipelines: dataset spec, CSV parsing, tabular helpers, metrics, the
blessing rule, model files and RunInference, artifact names, reports. Never imports a pipeline."""
