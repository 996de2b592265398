"""Continuous training: each new data span -> features -> validation -> training -> evaluation
against the production model -> blessing -> registry push (``production`` moves only if blessed).

``paths`` (the bucket layout of CT and the registry of a pipeline), ``definition`` (the CT pipeline
definition of a build), ``cache`` (content-addressed step outputs), ``steps`` (each step a cached
call of an ML pipeline's ``run``), ``lineage`` (which code, data and parameters made what),
``registry`` (versions and aliases), ``outcomes`` (what a run did), ``loop`` (the runs), ``demo``,
``views`` (what ``model-list`` and ``lineage`` show), ``cli`` (``python -m beam_pipelines.ct``). This floor calls the pipelines; it never knows the harness.
"""
