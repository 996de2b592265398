"""The local build-test-deploy harness (Cloud Build -> Composer -> Dataflow, over a bucket URL).

Modules: ``layout`` (the contract: bucket layout, variables, manifest, build ids), ``bucket``
(I/O through Beam's FileSystems, atomic writes, sha256, the deploy lock), ``build`` (gates, wheel,
manifest), ``compare`` (golden-file comparison), ``workflows`` (workflow definitions, checks,
running a deployed wheel), ``integration`` (the ``test`` step), ``deploy`` (deploy, rollback,
history, approval gate), ``status``. ``tasks.py`` only composes them.
"""
