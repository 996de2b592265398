"""The blessing rule: TFX/TFMA model-validation semantics as pure functions over metric maps.

A config maps metric names to a value threshold and/or a change threshold (YAML or JSON)::

    metrics:
      auc:
        value_threshold: {lower_bound: 0.5}            # lower_bound <= value <= upper_bound
        change_threshold: {direction: HIGHER_IS_BETTER, absolute: -1.0e-10, noise: paired}
      log_loss:
        change_threshold: {direction: LOWER_IS_BETTER, relative: 0.05}
    registered_change:      # the candidate against production's *registered* metrics
      auc: {direction: HIGHER_IS_BETTER, absolute: -0.05}

Semantics (TFMA's ``metrics_validator``, rule for rule):

- value threshold: passes when ``lower_bound <= value <= upper_bound``; an unset bound is -inf/+inf.
- change threshold: ``diff = candidate - baseline``, ``relative = diff / baseline`` (NaN when the
  baseline is 0, and then the check fails, as in TFMA). HIGHER_IS_BETTER passes when
  ``diff >= absolute and relative >= relative_bound`` (unset bounds -inf); LOWER_IS_BETTER passes
  when ``diff <= absolute and relative <= relative_bound`` (unset bounds +inf).
- change threshold on the same rows with confidence (ours, beyond TFMA; ``auc``, ``log_loss``,
  ``brier_score``): both models are scored on the same eval rows, so each difference has a paired
  standard error (``ml.metrics``: DeLong's for AUC; sd(per-row loss differences)/sqrt(n) for the
  mean losses). The check then uses both models' values on those rows and a one-sided bound in
  diff's place (``z`` = 1.645 at the default ``confidence: 0.95``):
  ``noise: paired`` (benefit of the doubt) judges ``diff + z x SE`` (``diff - z x SE`` for
  LOWER_IS_BETTER): the candidate fails only when worse than the threshold beyond noise; without
  a standard error it is TFMA's exact rule. ``noise: non_inferiority`` (burden of proof) judges
  ``diff - z x SE`` (``diff + z x SE`` for LOWER_IS_BETTER) against ``absolute``, the margin: it
  passes only when shown no worse than the margin, and fails without a standard error.
  ``noise: exact`` (the default when the field is absent) keeps TFMA's exact rule always. Every
  change check of a compared metric records the two-sided 95% interval and the rows.
- every thresholded metric must be present (and a number) for the candidate, and for the baseline
  when a change threshold is checked; a missing one fails with "metric not found".
- no baseline: change thresholds are ignored and the candidate is judged ("rubber stamped") on its
  value thresholds alone.
- registered change (ours, beyond TFMA): the candidate against the metrics production recorded
  when it was registered (on its own eval data), with change-threshold semantics. TFMA's change
  threshold compares both models on the *same* eval split, so a span whose data is corrupted can
  bless a much worse model that merely beats production on that corrupted split; this bound stops
  it. Checked only when the registered metrics are given (continuous training passes them).
- BLESSED only when every check passes; the message names each failing metric and by how much.

``DEFAULT_CONFIG`` is "push only if at least as good", as in TFX's taxi template, made to protect
production: AUC at least 0.6, not lower than the baseline's on the same data beyond sampling noise
(absolute change >= -1e-10 with ``noise: paired``: a difference of -8e-5 on 880 rows is noise and
passes, a candidate clearly worse on the same rows fails), and at most 0.05 below production's
registered AUC.
"""

from __future__ import annotations

import dataclasses
import json
import math
from statistics import NormalDist
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union, cast

import yaml

from beam_pipelines.ml import artifacts
from beam_pipelines.store import bucket
from beam_pipelines.store.errors import Refusal

HIGHER_IS_BETTER, LOWER_IS_BETTER = 'HIGHER_IS_BETTER', 'LOWER_IS_BETTER'
DIRECTIONS = (HIGHER_IS_BETTER, LOWER_IS_BETTER)
VALUE, CHANGE, REGISTERED = 'value_threshold', 'change_threshold', 'registered_change'
# A change threshold's ``noise``: point estimates (TFMA), or a paired comparison's one-sided bound
# in the candidate's favour (paired: fails only when worse beyond noise) or against it
# (non_inferiority: passes only when shown no worse than the margin).
EXACT, PAIRED, NON_INFERIORITY = 'exact', 'paired', 'non_inferiority'
NOISES = (EXACT, PAIRED, NON_INFERIORITY)
# Metrics with a paired comparison (``ml.metrics.PairedMetricsCombineFn``, ``PAIRED_METRICS``)
PAIRED_METRICS = ('auc', 'log_loss', 'brier_score')
DEFAULT_CONFIDENCE = 0.95
CI_LEVEL = 0.95  # the two-sided interval of the difference every paired check reports

DEFAULT_CONFIG: Mapping[str, object] = {
    'metrics': {
        'auc': {
            VALUE: {'lower_bound': 0.6},
            CHANGE: {'direction': HIGHER_IS_BETTER, 'absolute': -1e-10, 'noise': PAIRED},
        },
    },
    REGISTERED: {'auc': {'direction': HIGHER_IS_BETTER, 'absolute': -0.05}},
}


class BlessingConfigError(Refusal, ValueError):
  """The blessing config is invalid; the message names the field."""


@dataclasses.dataclass(frozen=True)
class ValueThreshold:
  lower_bound: float = -math.inf
  upper_bound: float = math.inf


@dataclasses.dataclass(frozen=True)
class ChangeThreshold:
  direction: str
  absolute: Optional[float] = None
  relative: Optional[float] = None
  noise: str = EXACT  # PAIRED / NON_INFERIORITY: judge a one-sided bound of the paired difference
  confidence: float = DEFAULT_CONFIDENCE  # of that one-sided bound

  @property
  def z(self) -> float:
    return NormalDist().inv_cdf(self.confidence)


@dataclasses.dataclass(frozen=True)
class MetricThreshold:
  value: Optional[ValueThreshold] = None
  change: Optional[ChangeThreshold] = None


@dataclasses.dataclass(frozen=True)
class Check:
  """One threshold checked on one metric."""

  metric: str
  kind: str  # VALUE or CHANGE
  passed: bool
  message: str
  candidate: Optional[float] = None
  baseline: Optional[float] = None
  diff: Optional[float] = None
  relative: Optional[float] = None
  noise: Optional[str] = None  # PAIRED / NON_INFERIORITY when judged with the paired error
  standard_error: Optional[float] = None
  bound: Optional[float] = None  # the one-sided bound of diff that was compared
  rows: Optional[int] = None  # rows of the paired comparison (its sample)
  measured: Optional['Measured'] = None  # the paired comparison of this metric, when there is one

  def to_dict(self) -> artifacts.BlessingCheck:
    check = artifacts.BlessingCheck(
        metric=self.metric, kind=self.kind, passed=self.passed, message=self.message,
        candidate=_json_number(self.candidate), baseline=_json_number(self.baseline),
        diff=_json_number(self.diff), relative=_json_number(self.relative))
    if self.noise is not None:
      check['noise'] = self.noise
      check['standard_error'] = _json_number(self.standard_error)
      check['bound'] = _json_number(self.bound)
    if self.measured is not None:
      measured = self.measured
      check['rows'], check['positives'] = measured.rows, measured.positives
      check['total_rows'], check['ci_level'] = measured.total_rows, CI_LEVEL
      check['ci_lower'] = _json_number(measured.ci_lower)
      check['ci_upper'] = _json_number(measured.ci_upper)
      if measured.data is not None:
        check['data'] = measured.data
    elif self.rows is not None:
      check['rows'] = self.rows
    return check


@dataclasses.dataclass(frozen=True)
class Measured:
  """A paired comparison of one metric (``artifacts.MetricComparison``, or an older AUC-only
  record): both models' values on the same rows, the difference, its standard error and interval."""

  candidate: float
  baseline: float
  diff: float
  standard_error: float
  rows: int  # rows of the sample the comparison used
  positives: int
  total_rows: int  # rows both models scored
  data: Optional[str] = None  # which rows: the eval split's files or the input pattern

  @property
  def on(self) -> str:
    """'the same 2,007 rows', or 'a sample of 200,000 of the same 900,000 rows'."""
    if self.rows == self.total_rows:
      return f'the same {self.rows:,} rows'
    return f'a sample of {self.rows:,} of the same {self.total_rows:,} rows'

  @property
  def ci_lower(self) -> float:
    return self.diff - _Z_CI * self.standard_error

  @property
  def ci_upper(self) -> float:
    return self.diff + _Z_CI * self.standard_error

  def describe(self, metric: str) -> str:
    """'auc candidate - baseline on the same 2,007 rows (412 positives) of DATA: +0.0020, 95% CI
    [-0.0110, +0.0150]'."""
    where = f' of {self.data}' if self.data else ''
    return (f'{metric} candidate - baseline on {self.on} ({self.positives:,} positives)'
            f'{where}: {self.diff:+.4f}, {CI_LEVEL:.0%} CI [{self.ci_lower:+.4f}, '
            f'{self.ci_upper:+.4f}]')


_Z_CI = NormalDist().inv_cdf(0.5 + CI_LEVEL / 2)


def measured(paired: Optional[Mapping[str, Any]]) -> Optional[Measured]:
  """The comparison's numbers when both values, the difference and a finite standard error are
  known (new records: ``candidate``/``baseline``/``difference``; older AUC records:
  ``candidate_auc``/``baseline_auc``/``auc_difference``), else None."""
  if not paired:
    return None
  def first(*names: str) -> Optional[float]:
    return next((v for v in (_present(paired, n) for n in names) if v is not None), None)
  values = (first('candidate', 'candidate_auc'), first('baseline', 'baseline_auc'),
            first('difference', 'auc_difference'), _present(paired, 'standard_error'))
  if any(v is None for v in values) or not math.isfinite(cast(float, values[3])):
    return None
  candidate, baseline, diff, error = cast(Tuple[float, float, float, float], values)
  rows = int(paired.get('sampled_rows') or 0)
  total = int(paired.get('rows') or rows)
  positives = int(paired.get('sampled_positives', paired.get('positives')) or 0)
  data = paired.get('data')
  return Measured(candidate, baseline, diff, error, rows, positives, total,
                  data if isinstance(data, str) else None)


@dataclasses.dataclass(frozen=True)
class Blessing:
  """The result record: BLESSED / NOT_BLESSED, why, and every check made."""

  status: str
  message: str
  checks: List[Check]
  rubber_stamped: bool

  @property
  def blessed(self) -> bool:
    return self.status == artifacts.BLESSED

  def to_dict(self) -> artifacts.BlessingDocument:
    return artifacts.BlessingDocument(
        status=self.status, message=self.message, rubber_stamped=self.rubber_stamped,
        checks=[c.to_dict() for c in self.checks])


def _json_number(value: Optional[float]) -> artifacts.JsonNumber:
  """NaN/inf are not JSON: write them as strings."""
  if isinstance(value, float) and not math.isfinite(value):
    return str(value)
  return value


def _number(raw: Any, where: str) -> float:
  if isinstance(raw, bool) or not isinstance(raw, (int, float)):
    raise BlessingConfigError(f'{where} must be a number, got {raw!r}')
  return float(raw)


def parse_config(raw: Any) -> Dict[str, MetricThreshold]:
  """Validates a config document -> {metric: MetricThreshold}; errors name the field."""
  if not isinstance(raw, dict) or not isinstance(raw.get('metrics'), dict) or not raw['metrics']:
    raise BlessingConfigError("blessing config needs a non-empty 'metrics' mapping")
  unknown = sorted(set(raw) - {'metrics', REGISTERED})
  if unknown:
    raise BlessingConfigError(f'unknown blessing config field(s) {unknown}')
  thresholds = {}
  for metric, spec in raw['metrics'].items():
    where = f'metrics.{metric}'
    if not isinstance(spec, dict) or not spec or not set(spec) <= {VALUE, CHANGE}:
      raise BlessingConfigError(f'{where} must map {VALUE!r} and/or {CHANGE!r}, got {spec!r}')
    value = change = None
    if VALUE in spec:
      bounds = spec[VALUE]
      if not isinstance(bounds, dict) or not bounds or not set(bounds) <= {'lower_bound', 'upper_bound'}:
        raise BlessingConfigError(f'{where}.{VALUE} must set lower_bound and/or upper_bound')
      value = ValueThreshold(
          _number(bounds.get('lower_bound', -math.inf), f'{where}.{VALUE}.lower_bound'),
          _number(bounds.get('upper_bound', math.inf), f'{where}.{VALUE}.upper_bound'))
    if CHANGE in spec:
      change = _change_threshold(spec[CHANGE], f'{where}.{CHANGE}', noise=True)
      if change.noise != EXACT and metric not in PAIRED_METRICS:
        raise BlessingConfigError(f'{where}.{CHANGE}.noise: {change.noise!r} is available for '
                                  f'{", ".join(PAIRED_METRICS)} only, not {metric}')
    thresholds[metric] = MetricThreshold(value, change)
  return thresholds


def _change_threshold(bounds: Any, where: str, noise: bool = False) -> ChangeThreshold:
  fields = ['direction', 'absolute', 'relative'] + (['noise', 'confidence'] if noise else [])
  if not isinstance(bounds, dict) or not set(bounds) <= set(fields):
    raise BlessingConfigError(f'{where} fields are {", ".join(fields)}')
  if bounds.get('direction') not in DIRECTIONS:
    raise BlessingConfigError(
        f'{where}.direction must be one of {list(DIRECTIONS)}, got {bounds.get("direction")!r}')
  kind = bounds.get('noise', EXACT)
  if kind not in NOISES:
    raise BlessingConfigError(f'{where}.noise must be one of {list(NOISES)}, got {kind!r}')
  confidence = _number(bounds.get('confidence', DEFAULT_CONFIDENCE), f'{where}.confidence')
  if not 0.5 <= confidence < 1:
    raise BlessingConfigError(f'{where}.confidence must be in [0.5, 1), got {confidence!r}')
  absolute, relative = (None if bounds.get(f) is None else _number(bounds[f], f'{where}.{f}')
                        for f in ('absolute', 'relative'))
  return ChangeThreshold(bounds['direction'], absolute, relative, noise=kind,
                         confidence=confidence)


def parse_registered(raw: Any) -> Dict[str, ChangeThreshold]:
  """The ``registered_change`` part of a config: {metric: ChangeThreshold} (empty when absent)."""
  section = raw.get(REGISTERED) if isinstance(raw, dict) else None
  if section is None:
    return {}
  if not isinstance(section, dict):
    raise BlessingConfigError(f'{REGISTERED} must map metric names to change thresholds')
  return {metric: _change_threshold(bounds, f'{REGISTERED}.{metric}')
          for metric, bounds in section.items()}


def load_document(path: Optional[str] = None) -> Mapping[str, object]:
  """A YAML/JSON blessing config document (any bucket path), checked; the default when None."""
  if path is None:
    return DEFAULT_CONFIG
  try:
    text = bucket.read_bytes(path, 'blessing config').decode('utf-8')
    try:
      raw = json.loads(text)  # YAML 1.1 reads JSON's 1e-10 as a string: JSON first
    except ValueError:
      raw = yaml.safe_load(text)
  except (Refusal, yaml.YAMLError, UnicodeDecodeError) as error:
    raise BlessingConfigError(f'cannot read blessing config {path}: {error}') from None
  try:
    parse_config(raw)
    parse_registered(raw)
  except BlessingConfigError as error:
    raise BlessingConfigError(f'{path}: {error}') from None
  return raw


def load_config(path: Optional[str] = None) -> Dict[str, MetricThreshold]:
  """Reads a YAML/JSON blessing config (any bucket path), or the embedded default."""
  return parse_config(load_document(path))


def _present(metrics: Optional[Mapping[str, Any]], name: str) -> Optional[float]:
  """The metric as a float, or None when missing or not a number."""
  if metrics is None or name not in metrics:
    return None
  value = metrics[name]
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    return None
  return float(value)


def check_value(metric: str, value: float, threshold: ValueThreshold) -> Check:
  """TFMA GenericValueThreshold: lower_bound <= value <= upper_bound."""
  passed = threshold.lower_bound <= value <= threshold.upper_bound
  if passed:
    message = f'{metric} = {value:.6g} within [{threshold.lower_bound:g}, {threshold.upper_bound:g}]'
  elif not value >= threshold.lower_bound:
    message = (f'{metric} = {value:.6g} is below lower_bound {threshold.lower_bound:g} '
               f'by {threshold.lower_bound - value:.6g}')
  else:
    message = (f'{metric} = {value:.6g} is above upper_bound {threshold.upper_bound:g} '
               f'by {value - threshold.upper_bound:.6g}')
  return Check(metric, VALUE, passed, message, candidate=value)


def check_change(metric: str, candidate: float, baseline: float, threshold: ChangeThreshold,
                 paired: Optional[Mapping[str, Any]] = None) -> Check:
  """TFMA GenericChangeThreshold: diff = candidate - baseline, relative = diff / baseline.

  With a paired comparison of the metric that has a standard error (``paired``, an
  ``artifacts.MetricComparison``), ``noise: paired`` and ``noise: non_inferiority`` use the
  comparison's numbers (both models' values on the same rows) and a one-sided bound takes diff's
  place against the absolute and relative thresholds:

  - paired (benefit of the doubt): ``diff + z x SE`` (``diff - z x SE`` when lower is better), the
    bound in the candidate's favour: it fails only when worse than the threshold beyond noise;
  - non_inferiority (burden of proof): ``diff - z x SE`` (``diff + z x SE`` when lower is better),
    the bound against it: it passes only when shown no worse than the threshold, the margin.

  Without a standard error: TFMA's exact rule for paired; non_inferiority fails (nothing shown).
  Whatever the rule, the check carries the comparison's interval and rows when there is one.
  """
  higher = threshold.direction == HIGHER_IS_BETTER
  compared = measured(paired)
  judged = compared if threshold.noise != EXACT else None
  if threshold.noise == NON_INFERIORITY and compared is None:
    return Check(metric, CHANGE, False,
                 f'{metric}: non-inferiority cannot be shown without a paired comparison of both '
                 f'models on the same rows with a standard error (candidate {candidate:.6g} vs '
                 f'baseline {baseline:.6g})', candidate=candidate, baseline=baseline,
                 diff=candidate - baseline, noise=NON_INFERIORITY)
  if judged is not None:
    candidate, baseline, diff = judged.candidate, judged.baseline, judged.diff
    towards = higher if threshold.noise == PAIRED else not higher  # the bound's side: + or -
    bound = diff + threshold.z * judged.standard_error * (1 if towards else -1)
  else:
    diff = bound = candidate - baseline
  relative = math.nan if math.isclose(baseline, 0.0) else bound / baseline
  default = -math.inf if higher else math.inf
  absolute = default if threshold.absolute is None else threshold.absolute
  relative_bound = default if threshold.relative is None else threshold.relative
  if higher:
    abs_ok, rel_ok = bound >= absolute, relative >= relative_bound
  else:
    abs_ok, rel_ok = bound <= absolute, relative <= relative_bound
  word = '>=' if higher else '<='
  what = 'diff' if judged is None else 'bound'
  reasons = []
  if not abs_ok:
    reasons.append(f'{what} {bound:+.6g} is not {word} absolute {absolute:g} '
                   f'(short by {abs(absolute - bound):.6g})')
  if not rel_ok:
    if math.isnan(relative):
      reasons.append('relative change is undefined (baseline is 0), which fails as in TFMA')
    else:
      reasons.append(f'relative {relative:+.6g} is not {word} relative {relative_bound:g} '
                     f'(short by {abs(relative_bound - relative):.6g})')
  passed = abs_ok and rel_ok
  if judged is None:
    head = (f'{metric}: candidate {candidate:.6g} vs baseline {baseline:.6g} '
            f'({threshold.direction})')
    message = f'{head}: ' + ('; '.join(reasons) if reasons else f'diff {diff:+.6g} ok')
    if threshold.noise == PAIRED:
      message += ' (no paired standard error: exact rule)'
    elif compared is not None:
      message += f' [{compared.describe(metric)}]'
    return Check(metric, CHANGE, passed, message, candidate=candidate, baseline=baseline,
                 diff=diff, relative=relative, measured=compared)
  side = 'upper' if bound > diff or (bound == diff and towards) else 'lower'
  rule = 'paired' if threshold.noise == PAIRED else 'non-inferiority'
  head = (f'{metric}: candidate {candidate:.6f} vs baseline {baseline:.6f} '
          f'({threshold.direction}; {rule}, exact values on {judged.on}): diff {diff:+.6f}, '
          f'{CI_LEVEL:.0%} CI [{judged.ci_lower:+.6f}, {judged.ci_upper:+.6f}], standard error '
          f'{judged.standard_error:.2g}, one-sided {threshold.confidence:.0%} {side} bound '
          f'{bound:+.6f}')
  if passed:
    verdict = ('not worse beyond noise, ok' if threshold.noise == PAIRED
               else 'shown no worse than the margin, ok')
    message = (f'{head} {word} absolute {absolute:g}'
               + (f', relative {relative:+.6g} {word} {relative_bound:g}'
                  if threshold.relative is not None else '')
               + f': {verdict}')
  else:
    verdict = ('worse beyond noise' if threshold.noise == PAIRED
               else 'non-inferiority not shown')
    message = f'{head}: {verdict}: ' + '; '.join(reasons)
  return Check(metric, CHANGE, passed, message, candidate=candidate, baseline=baseline, diff=diff,
               relative=relative, noise=threshold.noise, standard_error=judged.standard_error,
               bound=bound, rows=judged.rows, measured=judged)


def bless(candidate: Mapping[str, Any], baseline: Optional[Mapping[str, Any]],
          thresholds: Mapping[str, MetricThreshold],
          registered: Optional[Mapping[str, Any]] = None,
          registered_thresholds: Optional[Mapping[str, ChangeThreshold]] = None,
          paired: Optional[Mapping[str, Mapping[str, Any]]] = None) -> Blessing:
  """Judges a candidate's metrics (and a baseline's, or None for a first model) by the thresholds;
  with ``registered`` (production's metrics as registered), also by ``registered_thresholds``;
  ``paired`` (metric -> ``artifacts.MetricComparison`` of both models on the same rows) serves the
  change thresholds judged with ``noise: paired`` or ``non_inferiority`` and gives every change
  check of a compared metric its interval and rows."""
  checks: List[Check] = []
  for metric, change in sorted((registered_thresholds or {}).items()):
    if registered is None:
      break
    value, base = _present(candidate, metric), _present(registered, metric)
    if value is None or base is None:
      checks.append(Check(metric, REGISTERED, False, f'{metric}: metric not found for the '
                          f'{"candidate" if value is None else "registered production model"}'))
      continue
    check = check_change(metric, value, base, change)
    checks.append(dataclasses.replace(
        check, kind=REGISTERED,
        message=check.message.replace('vs baseline', "vs production's registered")))
  for metric in sorted(thresholds):
    bounds = thresholds[metric]
    value = _present(candidate, metric)
    compared = (paired or {}).get(metric)
    # A change judged on the paired comparison needs only the comparison's values (a metric the
    # slice combiners do not report, e.g. brier_score, can still be compared on the same rows).
    on_pairs = (bounds.change is not None and bounds.change.noise != EXACT
                and measured(compared) is not None)
    if value is None:
      kinds = [k for k, t in ((VALUE, bounds.value), (CHANGE, bounds.change))
               if t and (k == VALUE or (baseline is not None and not on_pairs))]
      for kind in kinds:
        checks.append(Check(metric, kind, False, f'{metric}: metric not found for the candidate'))
    elif bounds.value is not None:
      checks.append(check_value(metric, value, bounds.value))
    if bounds.change is None or baseline is None or (value is None and not on_pairs):
      continue
    base = _present(baseline, metric)
    if on_pairs:
      pair = cast(Measured, measured(compared))
      value, base = pair.candidate, pair.baseline
    if base is None:
      checks.append(Check(metric, CHANGE, False, f'{metric}: metric not found for the baseline',
                          candidate=value))
    else:
      checks.append(check_change(metric, cast(float, value), base, bounds.change, compared))
  failed = [c for c in checks if not c.passed]
  rubber_stamped = baseline is None
  if failed:
    status = artifacts.NOT_BLESSED
    message = 'NOT_BLESSED: ' + '; '.join(c.message for c in failed)
  else:
    status = artifacts.BLESSED
    how = ('no baseline: rubber-stamped on value thresholds' if rubber_stamped
           else 'every threshold passed against the baseline')
    message = f'BLESSED ({how}): ' + ('; '.join(c.message for c in checks)
                                       or 'no threshold applies without a baseline')
  return Blessing(status, message, checks, rubber_stamped)


def config_to_json(thresholds: Mapping[str, MetricThreshold]) -> str:
  """The thresholds as a JSON document (for reports and lineage)."""
  def _clean(obj):
    return {k: _json_number(v) for k, v in dataclasses.asdict(obj).items()} if obj else None
  return json.dumps({m: {'value_threshold': _clean(t.value), 'change_threshold': _clean(t.change)}
                     for m, t in sorted(thresholds.items())}, sort_keys=True)


@dataclasses.dataclass(frozen=True)
class BlessingRule:
  """A config's thresholds, with production's registered metrics when known: what ``judge`` uses."""

  thresholds: Dict[str, MetricThreshold]
  registered_thresholds: Dict[str, ChangeThreshold] = dataclasses.field(default_factory=dict)
  registered_metrics: Optional[Dict[str, Union[int, float, None]]] = None

  @classmethod
  def load(cls, path: Optional[str] = None,
           registered_metrics: Optional[Mapping[str, Any]] = None) -> 'BlessingRule':
    """The rule of a config file (the default config when None)."""
    return cls.from_config(load_document(path), registered_metrics)

  @classmethod
  def from_config(cls, raw: Mapping[str, Any],
                  registered_metrics: Optional[Mapping[str, Any]] = None) -> 'BlessingRule':
    """The rule of a config document (e.g. a pipeline definition's ``blessing``)."""
    return cls(parse_config(dict(raw)), parse_registered(dict(raw)),
               dict(registered_metrics) if registered_metrics is not None else None)

  def judge(self, candidate: Mapping[str, Any], baseline: Optional[Mapping[str, Any]],
            paired: Optional[Mapping[str, Mapping[str, Any]]] = None) -> Blessing:
    """The blessing of ``candidate`` against ``baseline`` (with ``paired``, the comparison of both
    on the same rows, metric -> ``artifacts.MetricComparison``)."""
    return bless(candidate, baseline, self.thresholds, self.registered_metrics,
                 self.registered_thresholds, paired)

  def describe(self) -> Dict[str, object]:
    """The rule as JSON-ready data (for the blessing record, reports and lineage)."""
    registered = {m: {k: _json_number(getattr(t, k)) for k in ('direction', 'absolute', 'relative')}
                  for m, t in sorted(self.registered_thresholds.items())}
    return {**json.loads(config_to_json(self.thresholds)),
            **({REGISTERED: registered, 'registered_metrics': self.registered_metrics}
               if registered else {})}
