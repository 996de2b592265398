"""Dataflow submission: a pipeline + the built wheel + a build id + the user's Beam flags -> Beam args.

The same pipeline code runs on the DirectRunner and on Dataflow; only the arguments differ. On
``DataflowRunner`` this module adds what remote workers need and what an operator wants to see:

* the project's code staged on the workers: ``--extra_package <absolute wheel path>`` (the built,
  sha256-checked wheel of the current or deployed build), or ``--setup_file <absolute setup.py>``
  when asked (Dataflow then builds an sdist from the source tree);
* ``--job_name <pipeline>-<build id>`` sanitised to Dataflow's rule ``[a-z]([-a-z0-9]*[a-z0-9])?``;
* ``--labels build_id=<id>`` and ``--labels pipeline=<name>`` sanitised to GCP's label rules.

Every other flag passes through untouched, and a flag the user gave explicitly wins (their
``--job_name``, their ``--extra_package``/``--setup_file``, their ``build_id`` label). Without a
wheel, env or setup file, the last local build (``dist/manifest.json`` of ``invoke build``) is
staged. ``submission_args`` is the call for ``invoke run``; ``prepare_argv`` the one-line hook for a
pipeline's ``run()``.

    python -m beam_pipelines.submission --pipeline wordcount --wheel dist/beam_pipelines-*.whl \\
        --build_id 20261126T1530Z-ab12cd3 --runner DataflowRunner --project P --region R \\
        --temp_location gs://BUCKET/tmp
    python -m beam_pipelines.submission --pipeline wordcount --env prod --bucket gs://BUCKET \\
        --runner DataflowRunner --project P --region R --temp_location gs://BUCKET/tmp

Only the standard library and the storage floor are imported at module level (Beam's FileSystems
only when a bucket is read), so the harness and ``--help`` stay fast.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import re
import sys
import tempfile
from typing import List, Optional, Sequence, Tuple

from beam_pipelines.store import bucket as bucket_io
from beam_pipelines.store import layout, records
from beam_pipelines.store.console import progress
from beam_pipelines.store.errors import Refusal

DATAFLOW_RUNNERS = frozenset({'DataflowRunner', 'TestDataflowRunner'})
# Flags by which a user stages code on the workers themselves; when present we add none.
STAGING_FLAGS = ('--extra_package', '--extra_packages', '--setup_file')
JOB_NAME_MAX = 100  # Dataflow accepts longer names; the console and `gcloud` lists do not.
LABEL_MAX = 63  # GCP labels: keys and values at most 63 characters.
BUILD_ID_LABEL = 'build_id'
PIPELINE_LABEL = 'pipeline'
CONTAINER_FLAG = '--sdk_container_image'
# Pipelines whose workers need the `ml` extra (TFDV, scikit-learn): on Dataflow they run in the
# project's SDK container (build/container/Dockerfile), which has the whole lock installed.
ML_EXTRA_PIPELINES = frozenset({'validate', 'evaluate', 'predict', 'ct'})  # ct runs all three

_JOB_NAME_RE = re.compile(r'[a-z]([-a-z0-9]*[a-z0-9])?')
_NOT_JOB_CHARS = re.compile(r'[^a-z0-9]+')
_NOT_LABEL_CHARS = re.compile(r'[^a-z0-9_-]+')


class SubmissionError(Refusal, ValueError):
  """A Dataflow submission that cannot be built as asked (message says what to do)."""


# ---------------------------------------------------------------------------------------------
# Names: pure functions, each with its own tests.


def flag_values(beam_args: Sequence[str], *names: str) -> List[str]:
  """Values of ``--name value`` / ``--name=value`` flags in ``beam_args``, in order."""
  values = []
  args = list(beam_args)
  for i, arg in enumerate(args):
    for name in names:
      if arg == name and i + 1 < len(args):
        values.append(args[i + 1])
      elif arg.startswith(name + '='):
        values.append(arg[len(name) + 1:])
  return values


def has_flag(beam_args: Sequence[str], *names: str) -> bool:
  """True when any of ``names`` is given, with or without a value."""
  return any(arg == name or arg.startswith(name + '=') for arg in beam_args for name in names)


def is_dry_run(beam_args: Sequence[str]) -> bool:
  """True when Beam's ``--dry_run`` is given a value (Beam takes any non-empty one as true): the
  job is only built, and no gs:// location is contacted."""
  values = flag_values(beam_args, '--dry_run')
  return bool(values and values[-1])


def refuse_unreachable(argv: Sequence[str]) -> None:
  """Each gs:// bucket named in a command line must be reachable (``bucket.refuse_unreachable``),
  unless the command only builds a job (``--dry_run``)."""
  if not is_dry_run(argv):
    bucket_io.refuse_unreachable(argv)


def runner_of(beam_args: Sequence[str]) -> Optional[str]:
  """The ``--runner`` given (last one wins, as in argparse), or None."""
  runners = flag_values(beam_args, '--runner')
  return runners[-1] if runners else None


def is_dataflow(beam_args: Sequence[str]) -> bool:
  """True when the args select Dataflow (``DataflowRunner`` or Beam's ``TestDataflowRunner``)."""
  runner = runner_of(beam_args) or ''
  return runner.rsplit('.', 1)[-1] in DATAFLOW_RUNNERS


def job_name(pipeline: str, build_id: Optional[str] = None) -> str:
  """``<pipeline>-<build id>`` under Dataflow's job name rule ``[a-z]([-a-z0-9]*[a-z0-9])?``.

  Lower-cases, turns every run of other characters into one ``-``, prefixes ``job-`` when the
  name would not start with a letter, and keeps at most ``JOB_NAME_MAX`` characters.
  """
  parts = [_NOT_JOB_CHARS.sub('-', part.lower()).strip('-') for part in (pipeline, build_id or '')]
  if not parts[0]:
    raise SubmissionError(f'pipeline name {pipeline!r} has no letter or digit for a job name')
  name = '-'.join(part for part in parts if part)
  if not name[0].isalpha():
    name = 'job-' + name
  name = name[:JOB_NAME_MAX].rstrip('-')
  assert _JOB_NAME_RE.fullmatch(name), name
  return name


def container_image(repository: str, build_id: str) -> str:
  """The project's SDK container of a build: ``<repository>:<build id>`` (Cloud Build's tag)."""
  if not repository or ':' in repository.rsplit('/', 1)[-1] or '@' in repository:
    raise SubmissionError(f'container repository {repository!r}: expected REGION-docker.pkg.dev/'
                          f'PROJECT/REPO/IMAGE without a tag (the build id is the tag)')
  return f'{repository}:{build_id}'


def label_value(text: str) -> str:
  """A GCP label value: lower-case letters, digits, ``_`` and ``-``, at most 63 characters."""
  value = _NOT_LABEL_CHARS.sub('-', text.lower())
  return value[:LABEL_MAX]


# ---------------------------------------------------------------------------------------------
# The args.


def dataflow_args(
    pipeline: str,
    beam_args: Sequence[str],
    *,
    wheel: Optional[str] = None,
    setup_file: Optional[str] = None,
    build_id: Optional[str] = None,
    image: Optional[str] = None) -> List[str]:
  """Beam args for a Dataflow job of ``pipeline``: ``beam_args`` plus staging, job name, labels.

  ``image`` is the project's SDK container (``--sdk_container_image``, unless the user gave one);
  a pipeline of ``ML_EXTRA_PIPELINES`` is refused without one (or a ``--requirements_file``):
  its workers would lack TFDV/scikit-learn, which the wheel's base requirements leave out.

  Give the built ``wheel`` (staged with ``--extra_package``) or the project's ``setup_file``
  (``--setup_file``), not both; both must exist and are made absolute (Beam resolves staged files
  at submission). If the user's args already stage code (``--extra_package``/``--setup_file``),
  theirs are used and neither is needed.
  """
  if wheel and setup_file:
    raise SubmissionError('stage either the built wheel (--extra_package) or setup.py '
                          '(--setup_file), not both')
  args = list(beam_args)
  if image and not has_flag(args, CONTAINER_FLAG):
    args += [CONTAINER_FLAG, image]
  if pipeline in ML_EXTRA_PIPELINES and not has_flag(args, CONTAINER_FLAG, '--requirements_file'):
    raise SubmissionError(
        f'{pipeline} needs TFDV/scikit-learn on the Dataflow workers: give the project\'s SDK '
        f'container ({CONTAINER_FLAG} REPO:BUILD_ID, built from build/container/Dockerfile; '
        f'`invoke run --container-repo REPO`) or a --requirements_file')
  if not has_flag(args, *STAGING_FLAGS):
    if wheel:
      args += ['--extra_package', _existing(wheel, suffix='.whl', what='wheel')]
    elif setup_file:
      args += ['--setup_file', _existing(setup_file, suffix='setup.py', what='setup file')]
    elif has_flag(args, CONTAINER_FLAG):
      pass  # the project's SDK container has the wheel installed (e.g. a Flex Template's job)
    else:
      raise SubmissionError(
          'Dataflow workers need the project\'s code: build it (`invoke build`) and pass the wheel '
          '(--wheel dist/beam_pipelines-*.whl), use a deployed build (--env prod), or pass '
          '--setup_file setup.py')
  if not has_flag(args, '--job_name'):
    args += ['--job_name', job_name(pipeline, build_id)]
  labels = flag_values(args, '--labels')
  label_keys = {label.split('=', 1)[0] for label in labels}
  if build_id and BUILD_ID_LABEL not in label_keys:
    args += ['--labels', f'{BUILD_ID_LABEL}={label_value(build_id)}']
  if PIPELINE_LABEL not in label_keys:
    args += ['--labels', f'{PIPELINE_LABEL}={label_value(pipeline)}']
  return args


def submission_args(
    pipeline: str,
    beam_args: Sequence[str],
    *,
    wheel: Optional[str] = None,
    setup_file: Optional[str] = None,
    build_id: Optional[str] = None,
    image: Optional[str] = None) -> List[str]:
  """``beam_args`` for running ``pipeline``: unchanged off Dataflow, ``dataflow_args`` on it.

  This is the one call ``invoke run`` and the DAGs make before handing args to a pipeline.
  """
  if not is_dataflow(beam_args):
    return list(beam_args)
  return dataflow_args(
      pipeline, beam_args, wheel=wheel, setup_file=setup_file, build_id=build_id, image=image)


def _existing(path: str, *, suffix: str, what: str) -> str:
  absolute = os.path.abspath(os.path.expanduser(path))
  if not absolute.endswith(suffix):
    raise SubmissionError(f'{what} {path!r} must end with {suffix!r}')
  if not os.path.isfile(absolute):
    raise SubmissionError(f'{what} {absolute} does not exist')
  return absolute


def current_build(dist_dir: str = 'dist') -> Tuple[str, str]:
  """(absolute wheel path, build id) of the last ``invoke build``, from ``dist/manifest.json``.

  The wheel's sha256 is checked against the manifest: a changed or missing wheel is refused.
  """
  manifest_path = os.path.abspath(os.path.join(dist_dir, layout.MANIFEST_FILE))
  if not os.path.isfile(manifest_path):
    raise SubmissionError(
        f'no build to stage on Dataflow ({manifest_path} missing): run `invoke build`, or pass '
        f'--extra_package WHEEL or --setup_file setup.py')
  try:
    manifest = records.read_manifest(manifest_path, 'the local build manifest')
  except Refusal as error:
    raise SubmissionError(str(error)) from None
  wheel = os.path.join(os.path.dirname(manifest_path), manifest.wheel)
  return fetch_wheel(wheel, manifest.wheel_sha256), manifest.build_id


def prepare_argv(pipeline: str, argv: Optional[Sequence[str]] = None) -> List[str]:
  """A pipeline's argv made ready for its runner: the hook a pipeline's ``run()`` calls first.

  Off Dataflow, or when the code is already staged and the job named (as by this module's CLI and
  the DAGs), the args are returned unchanged. Otherwise, on Dataflow, the last local build
  (``dist/``) is staged and names the job: ``python -m beam_pipelines.<name> --runner
  DataflowRunner ...`` then works from a checkout after ``invoke build``.
  """
  args = list(sys.argv[1:] if argv is None else argv)
  staged = has_flag(args, *STAGING_FLAGS, CONTAINER_FLAG)  # code on the workers already
  if not is_dataflow(args) or (staged and has_flag(args, '--job_name')):
    return args
  if staged:
    return name_and_label(pipeline, args, image_build_id(args))
  wheel, build_id = current_build()
  return dataflow_args(pipeline, args, wheel=wheel, build_id=build_id)


def image_build_id(beam_args: Sequence[str]) -> Optional[str]:
  """The build id of the project's SDK container named by ``--sdk_container_image``: its tag,
  when the tag is a build id (``container_image``: Cloud Build tags each image with its build)."""
  images = flag_values(beam_args, CONTAINER_FLAG)
  tag = images[-1].rsplit('/', 1)[-1].partition(':')[2] if images else ''
  return tag if layout.BUILD_ID_PATTERN.fullmatch(tag) else None


def name_and_label(pipeline: str, beam_args: Sequence[str], build_id: Optional[str]) -> List[str]:
  """``beam_args`` plus a job name and labels, when the code is staged by the caller: named and
  labelled by ``build_id`` when known, else named ``<pipeline>-run-<UTC time>`` so that two runs
  of one pipeline never share a name (Dataflow refuses a second running job of the same name)."""
  args = list(beam_args)
  if not has_flag(args, '--job_name'):
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%dt%H%M%S%fz')
    args += ['--job_name', job_name(pipeline, build_id or f'run-{stamp}')]
  label_keys = {label.split('=', 1)[0] for label in flag_values(args, '--labels')}
  if build_id and BUILD_ID_LABEL not in label_keys:
    args += ['--labels', f'{BUILD_ID_LABEL}={label_value(build_id)}']
  if PIPELINE_LABEL not in label_keys:
    args += ['--labels', f'{PIPELINE_LABEL}={label_value(pipeline)}']
  return args


# ---------------------------------------------------------------------------------------------
# Deployed builds: <bucket>/<env>/variables.json (the harness's Composer variables).


def read_deployed(bucket: str, env: str = layout.PROD) -> records.DeploymentVariables:
  """What ``env`` of ``bucket`` runs (its variables.json, local dir or gs://)."""
  try:
    environment = layout.Env(bucket, env)
    if not bucket_io.exists(environment.variables):
      raise SubmissionError(f'nothing deployed to {env}: {environment.variables} does not exist '
                            f'(run `invoke deploy`)')
    return records.read_variables(environment)
  except SubmissionError:
    raise
  except Refusal as error:
    raise SubmissionError(str(error)) from None


def fetch_wheel(url: str, sha256: str, dest_dir: Optional[str] = None) -> str:
  """A local, absolute copy of the wheel at ``url`` whose sha256 matches, else SubmissionError.

  A local wheel is checked in place unless ``dest_dir`` is given; a remote one (gs://) is copied
  to ``dest_dir`` (a new temporary directory by default) under its own file name, which Beam's
  stager requires; the copy appears only when its sha256 matches.
  """
  try:
    if '://' not in url and dest_dir is None:
      bucket_io.verify(url, sha256, 'wheel')
      return os.path.abspath(url)
    dest_dir = dest_dir or tempfile.mkdtemp(prefix='beam-pipelines-wheel-')
    return bucket_io.fetch_verified(url, sha256, os.path.join(dest_dir, url.rsplit('/', 1)[-1]),
                                    'wheel')
  except Refusal as error:
    raise SubmissionError(f'{error} (refusing to stage it)') from None


# ---------------------------------------------------------------------------------------------
# Running.


PIPELINE_MODULES = ('wordcount', 'features', 'validate', 'train', 'evaluate', 'predict',
                    'taxi_data')  # what --pipeline may name: the Beam pipeline modules


def pipeline_module(pipeline: str):
  """The module ``beam_pipelines.<pipeline>`` of a Beam pipeline; SubmissionError otherwise."""
  if pipeline not in PIPELINE_MODULES:
    raise SubmissionError(f'not a pipeline: {pipeline!r} (one of {", ".join(PIPELINE_MODULES)})')
  return importlib.import_module(f'beam_pipelines.{pipeline}')


def run_pipeline(pipeline: str, beam_args: Sequence[str]):
  """Runs ``beam_pipelines.<pipeline>.run(beam_args)`` in this process; returns its result."""
  return pipeline_module(pipeline).run(list(beam_args))


def parse_args(argv: Optional[Sequence[str]] = None):
  """This module's own flags; everything else is returned as Beam args."""
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0], allow_abbrev=False)
  parser.add_argument('--pipeline', required=True, help='Pipeline module: wordcount, features ...')
  staged = parser.add_mutually_exclusive_group()
  staged.add_argument('--wheel', help='Built wheel to stage on Dataflow workers (--extra_package).')
  staged.add_argument('--setup_file', help="Stage the source tree with this setup.py instead.")
  staged.add_argument('--env', choices=('test', 'prod'),
                      help='Stage the wheel deployed to this environment (needs --bucket).')
  parser.add_argument('--bucket', default=os.environ.get('BEAM_PIPELINES_BUCKET'),
                      help='Bucket holding <env>/variables.json (default: $BEAM_PIPELINES_BUCKET).')
  parser.add_argument('--build_id', help='Build id for the job name and label (default: the '
                      "deployed build's with --env).")
  parser.add_argument('--container_repo', default=None,
                      help="The project's SDK container repository; the job runs in "
                      '<repo>:<build id> (--sdk_container_image).')
  return parser.parse_known_args(argv)


def resolve_cli(argv: Optional[Sequence[str]] = None) -> Tuple[str, List[str], Optional[str]]:
  """(pipeline, its Beam args, build id) for this module's command line; SubmissionError if not."""
  known, beam_args = parse_args(argv)
  wheel, build_id = known.wheel, known.build_id
  if known.env:
    if not is_dataflow(beam_args):
      raise SubmissionError(
          f'--env stages the deployed wheel on Dataflow workers; to run the {known.env} build '
          f'locally use `invoke run {known.pipeline} --env {known.env}` (it installs that wheel)')
    if not known.bucket:
      raise SubmissionError('--env needs --bucket (or $BEAM_PIPELINES_BUCKET)')
    bucket_io.check_reachable(known.bucket)  # in seconds, not minutes of retries
    deployed = read_deployed(known.bucket, known.env)
    wheel = fetch_wheel(deployed.wheel_file, deployed.sha256)
    build_id = build_id or deployed.build_id
  elif (is_dataflow(beam_args) and not (wheel or known.setup_file)
        and not has_flag(beam_args, *STAGING_FLAGS)):
    wheel, dist_build_id = current_build()
    build_id = build_id or dist_build_id
  image = container_image(known.container_repo, build_id or '') if known.container_repo else None
  args = submission_args(known.pipeline, beam_args, wheel=wheel, setup_file=known.setup_file,
                         build_id=build_id, image=image)
  return known.pipeline, args, build_id


def main(argv: Optional[Sequence[str]] = None) -> int:
  """The command line: the pipeline's own ``main`` gives the exit status (README, "Exit
  statuses"): 0 done, 1 a stopping verdict, 2 an error, 3 NOT_BLESSED."""
  try:
    refuse_unreachable(sys.argv[1:] if argv is None else argv)
    pipeline, args, build_id = resolve_cli(argv)
    module = pipeline_module(pipeline)
  except Refusal as error:  # a SubmissionError, an unreachable or unreadable bucket
    progress(f'submission: error: {error}')
    return 2
  if is_dataflow(args):
    progress(f'submission: {pipeline} on Dataflow as job {flag_values(args, "--job_name")[-1]} '
             f'(build {build_id or "unknown"})')
  return module.main(list(args))


if __name__ == '__main__':
  sys.exit(main())
