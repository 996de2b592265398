"""The storage floor: what every other floor stands on, and nothing of the package above it.

``layout`` (the bucket contract: prefixes, variable names, manifest fields, build ids),
``bucket`` (object I/O through Beam's FileSystems, local reads without it: the one atomic
writer, the one sha256),
``records`` (the typed records that cross floors: manifests, deployment variables),
``lock`` (the exclusive-create lock of a bucket prefix), ``errors`` (the refusal types),
``console`` (progress lines), ``identity`` (who and which code acts), ``history`` (rollback
targets), ``signing`` (optional record signatures), ``text_lines`` (bounded lines of user files),
``crash`` (the kill test hook).
"""
