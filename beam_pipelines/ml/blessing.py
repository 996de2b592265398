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
- change threshold within noise (ours, beyond TFMA; ``noise: paired``, AUC only): both models are
  scored on the same eval rows, so their AUCs are compared row by row (``ml.metrics.delong``:
  DeLong's variance of the difference of two correlated AUCs). The check then uses the exact AUCs
  on those rows and the one-sided bound ``bound = diff + z x SE`` for HIGHER_IS_BETTER (``diff - z
  x SE`` for LOWER_IS_BETTER; ``z`` = 1.645 at the default ``confidence: 0.95``) in diff's place:
  HIGHER_IS_BETTER passes when ``bound >= absolute`` (and ``bound / baseline >= relative``), i.e.
  the candidate fails only when it is worse than the threshold beyond sampling noise, and a
  candidate equally good fails about 5 times in 100 at ``absolute`` ~ 0. Without a paired standard
  error (no comparison; fewer than 2 rows of a class) it is TFMA's exact rule; ``noise: exact``
  (the default when the field is absent) keeps TFMA's exact rule always.
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
from typing import Any, Dict, List, Mapping, Optional, Union

import yaml

from beam_pipelines.ml import artifacts
from beam_pipelines.store import bucket
from beam_pipelines.store.errors import Refusal

HIGHER_IS_BETTER, LOWER_IS_BETTER = 'HIGHER_IS_BETTER', 'LOWER_IS_BETTER'
DIRECTIONS = (HIGHER_IS_BETTER, LOWER_IS_BETTER)
VALUE, CHANGE, REGISTERED = 'value_threshold', 'change_threshold', 'registered_change'
EXACT, PAIRED = 'exact', 'paired'  # a change threshold's ``noise``: point estimates, or paired test
NOISES = (EXACT, PAIRED)
PAIRED_METRICS = ('auc',)  # metrics with a paired comparison (``ml.metrics.PairedAucCombineFn``)
DEFAULT_CONFIDENCE = 0.95

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
  noise: str = EXACT  # PAIRED: judge the one-sided bound of the paired difference, when known
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
  noise: Optional[str] = None  # PAIRED when judged with the paired standard error
  standard_error: Optional[float] = None
  bound: Optional[float] = None  # the one-sided bound of diff that was compared
  rows: Optional[int] = None  # rows of the paired comparison

  def to_dict(self) -> artifacts.BlessingCheck:
    check = artifacts.BlessingCheck(
        metric=self.metric, kind=self.kind, passed=self.passed, message=self.message,
        candidate=_json_number(self.candidate), baseline=_json_number(self.baseline),
        diff=_json_number(self.diff), relative=_json_number(self.relative))
    if self.noise is not None:
      check['noise'] = self.noise
      check['standard_error'] = _json_number(self.standard_error)
      check['bound'] = _json_number(self.bound)
      if self.rows is not None:
        check['rows'] = self.rows
    return check


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
      if change.noise == PAIRED and metric not in PAIRED_METRICS:
        raise BlessingConfigError(f'{where}.{CHANGE}.noise: {PAIRED!r} is available for '
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


def _paired_error(threshold: ChangeThreshold,
                  paired: Optional[Mapping[str, Any]]) -> Optional[float]:
  """The paired standard error to judge by: only with ``noise: paired`` and a known one."""
  if threshold.noise != PAIRED or not paired:
    return None
  error = _present(paired, 'standard_error')
  known = all(_present(paired, k) is not None
              for k in ('candidate_auc', 'baseline_auc', 'auc_difference'))
  return error if error is not None and math.isfinite(error) and known else None


def check_change(metric: str, candidate: float, baseline: float, threshold: ChangeThreshold,
                 paired: Optional[Mapping[str, Any]] = None) -> Check:
  """TFMA GenericChangeThreshold: diff = candidate - baseline, relative = diff / baseline.

  With ``noise: paired`` and a paired comparison that has a standard error (``paired``, an
  ``artifacts.AucComparison``), the comparison's numbers are used (both models' exact AUCs on the
  same rows) and ``bound = diff + z x SE`` (``diff - z x SE`` when lower is better) takes diff's
  place against the absolute and relative thresholds: the candidate fails only when it is worse
  beyond sampling noise. Without a standard error: TFMA's exact rule.
  """
  higher = threshold.direction == HIGHER_IS_BETTER
  error = _paired_error(threshold, paired)
  if paired and error is not None:
    candidate, baseline = float(paired['candidate_auc']), float(paired['baseline_auc'])
    diff = float(paired['auc_difference'])
    bound = diff + threshold.z * error if higher else diff - threshold.z * error
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
  what = 'diff' if error is None else 'bound'
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
  if error is None or not paired:
    head = (f'{metric}: candidate {candidate:.6g} vs baseline {baseline:.6g} '
            f'({threshold.direction})')
    message = f'{head}: ' + ('; '.join(reasons) if reasons else f'diff {diff:+.6g} ok')
    if threshold.noise == PAIRED:
      message += ' (no paired standard error: exact rule)'
    return Check(metric, CHANGE, passed, message, candidate=candidate, baseline=baseline,
                 diff=diff, relative=relative)
  rows, total = int(paired.get('sampled_rows') or 0), int(paired.get('rows') or 0)
  on = f'{rows} rows' if rows == total else f'a sample of {rows} of {total} rows'
  side = 'upper' if higher else 'lower'
  head = (f'{metric}: candidate {candidate:.6f} vs baseline {baseline:.6f} '
          f'({threshold.direction}; paired, exact AUCs on {on}): diff {diff:+.6f}, standard error '
          f'{error:.2g}, one-sided {threshold.confidence:.0%} {side} bound {bound:+.6f}')
  if passed:
    message = (f'{head} {word} absolute {absolute:g}'
               + (f', relative {relative:+.6g} {word} {relative_bound:g}'
                  if threshold.relative is not None else '')
               + ': not worse beyond noise, ok')
  else:
    message = f'{head}: worse beyond noise: ' + '; '.join(reasons)
  return Check(metric, CHANGE, passed, message, candidate=candidate, baseline=baseline, diff=diff,
               relative=relative, noise=PAIRED, standard_error=error, bound=bound, rows=rows)


def bless(candidate: Mapping[str, Any], baseline: Optional[Mapping[str, Any]],
          thresholds: Mapping[str, MetricThreshold],
          registered: Optional[Mapping[str, Any]] = None,
          registered_thresholds: Optional[Mapping[str, ChangeThreshold]] = None,
          paired: Optional[Mapping[str, Mapping[str, Any]]] = None) -> Blessing:
  """Judges a candidate's metrics (and a baseline's, or None for a first model) by the thresholds;
  with ``registered`` (production's metrics as registered), also by ``registered_thresholds``;
  ``paired`` (metric -> ``artifacts.AucComparison`` of both models on the same rows) serves the
  change thresholds judged within noise."""
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
    if value is None:
      kinds = [k for k, t in ((VALUE, bounds.value), (CHANGE, bounds.change))
               if t and (k == VALUE or baseline is not None)]
      for kind in kinds:
        checks.append(Check(metric, kind, False, f'{metric}: metric not found for the candidate'))
      continue
    if bounds.value is not None:
      checks.append(check_value(metric, value, bounds.value))
    if bounds.change is not None and baseline is not None:
      base = _present(baseline, metric)
      if base is None:
        checks.append(Check(metric, CHANGE, False, f'{metric}: metric not found for the baseline',
                            candidate=value))
      else:
        checks.append(check_change(metric, value, base, bounds.change,
                                   (paired or {}).get(metric)))
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
    on the same rows, metric -> ``artifacts.AucComparison``)."""
    return bless(candidate, baseline, self.thresholds, self.registered_metrics,
                 self.registered_thresholds, paired)

  def describe(self) -> Dict[str, object]:
    """The rule as JSON-ready data (for the blessing record, reports and lineage)."""
    registered = {m: {k: _json_number(getattr(t, k)) for k in ('direction', 'absolute', 'relative')}
                  for m, t in sorted(self.registered_thresholds.items())}
    return {**json.loads(config_to_json(self.thresholds)),
            **({REGISTERED: registered, 'registered_metrics': self.registered_metrics}
               if registered else {})}
