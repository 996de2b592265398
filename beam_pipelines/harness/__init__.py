"""The build-test-deploy harness (Cloud Build -> Composer -> Dataflow, over a bucket URL).

``build`` (gates, wheel, manifest), ``testing`` (the ``test`` step), ``publish`` (a build's files,
workflow definitions and variables into an environment), ``install`` (a deployed wheel, verified,
run in isolation), ``workflows`` (definitions), ``checks`` (the table of test checks: ``golden``,
``ml_check``), ``results`` (test reports and their one writer; ``record`` is its command line for
the Composer test DAG), ``deploy`` (deploy, rollback, history, approval gate),
``run``, ``status``. ``tasks.py`` only composes them; the storage they stand on is
``beam_pipelines.store``.
"""
