"""Tracking at the edges, opt-in: what continuous training and experiments record in the bucket,
mirrored to the tools a team may already run. The bucket stays the source of truth; a mirror that
fails says so in one line and the next run resumes it.

``mlflow_mirror`` (``$MLFLOW_TRACKING_URI``: CT runs, experiment runs, registered versions and
aliases in an MLflow tracking server, through its REST API) and ``openlineage_events``
(``$OPENLINEAGE_URL`` or ``$BEAM_PIPELINES_OPENLINEAGE_FILE``: START/COMPLETE/FAIL run events of
each CT step). Neither imports a client library. This floor reads ``beam_pipelines.ct``'s records;
``ct`` and ``experiment`` call it.
"""
