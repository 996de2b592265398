"""One metric across a model's registered versions, as an inline-SVG chart with an honest y axis.

One chart per metric (AUC and accuracy are not on one scale); the y axis starts at the metric's
floor (AUC: 0.5, chance; accuracy and the like: 0) rather than at the lowest value drawn, so small
differences look small; every point is labelled with its version and span on the x axis and in its
tooltip; a version that was not blessed is drawn hollow. Series measured on different rows (each
version's own eval split, a fixed holdout) are separate lines with their own legend entries.
"""

from __future__ import annotations

import dataclasses
import html
import math
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from beam_pipelines.pages import charts, page

# The bottom of a metric's y axis: the value that means "no skill" (AUC) or the scale's zero.
FLOOR: Dict[str, float] = {'auc': 0.5}
LABEL_EVERY_AT_MOST = 14  # x labels drawn; with more versions every k-th (each point keeps its tooltip)


@dataclasses.dataclass(frozen=True)
class VersionPoint:
  """A version's value of one metric."""
  version: int
  value: float
  blessed: bool = True


def axis(metric: str, values: Sequence[float]) -> Tuple[float, float]:
  """The y range: from the metric's floor (or 0) to 1 for metrics in [0, 1], else to the top value
  with headroom; a value below the floor lowers it (an AUC under 0.5 is shown, not cut)."""
  low = min([FLOOR.get(metric, 0.0)] + list(values))
  top = max(values, default=1.0)
  high = 1.0 if top <= 1.0 else top * 1.1
  return (math.floor(low * 10) / 10, high)


def _ticks(low: float, high: float) -> List[float]:
  span = high - low
  step = next((s for s in (0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0) if span / s <= 6),
              10 ** math.ceil(math.log10(span or 1.0)))
  first = math.ceil(low / step - 1e-9) * step
  return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def metric_by_version(name: str, metric: str, label: str,
                      series: Mapping[str, Sequence[VersionPoint]],
                      versions: Sequence[Tuple[int, str]], width: int = 520,
                      height: int = 300) -> str:
  """``series`` (legend -> points) over ``versions`` (number, span name), in that order on x."""
  position = {number: i for i, (number, _) in enumerate(versions)}
  values = [p.value for points in series.values() for p in points]
  y0, y1 = axis(metric, values)
  left, right, top, bottom = 56, 16, 14, 74
  legend_height = 14 * (len(series) + 1)
  plot_w, plot_h = width - left - right, height - top - bottom - legend_height
  step_x = plot_w / max(len(versions), 1)

  def sx(i: float) -> float:
    return left + step_x * (i + 0.5)

  def sy(y: float) -> float:
    return top + plot_h - (y - y0) / (y1 - y0) * plot_h

  spans = dict(versions)
  out = [charts._open(name, width, height, f'{label} across versions'),  # noqa: SLF001 (shared svg head)
         f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#bbb"/>']
  for t in _ticks(y0, y1):
    out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" '
               f'stroke="#eee"/><text x="{left - 4}" y="{sy(t) + 4:.1f}" text-anchor="end">'
               f'{html.escape(charts.human_number(t))}</text>')
  every = max(1, math.ceil(len(versions) / LABEL_EVERY_AT_MOST))
  for i, (number, span) in enumerate(versions):
    if i % every and i != len(versions) - 1:
      continue
    x, y = sx(i), top + plot_h + 13
    out.append(f'<text x="{x:.1f}" y="{y}" text-anchor="middle" font-weight="bold">v{number}</text>'
               f'<text x="{x:.1f}" y="{y + 12}" text-anchor="end" font-size="10" '
               f'transform="rotate(-30 {x:.1f} {y + 12})">{html.escape(span[-10:])}</text>')
  out.append(f'<text transform="translate(12 {top + plot_h / 2}) rotate(-90)" text-anchor="middle">'
             f'{html.escape(label)}</text>')
  for s, (legend, points) in enumerate(series.items()):
    colour = charts.PALETTE[s % len(charts.PALETTE)]
    placed = sorted((position[p.version], p) for p in points if p.version in position)
    dash = ' stroke-dasharray="6 3"' if s else ''
    if len(placed) > 1:
      coords = ' '.join(f'{sx(i):.1f},{sy(p.value):.1f}' for i, p in placed)
      out.append(f'<polyline class="mark" data-series="{html.escape(legend)}" points="{coords}" '
                 f'fill="none" stroke="{colour}" stroke-width="2"{dash}/>')
    for i, p in placed:
      fill = colour if p.blessed else '#fff'
      tip = (f'v{p.version}, span {spans.get(p.version, "")}: {label} {page.number(p.value)} '
             f'({legend}{"" if p.blessed else "; not blessed"})')
      out.append(f'<circle class="mark" data-version="{p.version}" cx="{sx(i):.1f}" '
                 f'cy="{sy(p.value):.1f}" r="4" fill="{fill}" stroke="{colour}" stroke-width="2">'
                 f'<title>{html.escape(tip)}</title></circle>')
      if s == 0 and len(versions) <= LABEL_EVERY_AT_MOST:  # the value, above its point
        out.append(f'<text x="{sx(i):.1f}" y="{sy(p.value) - 8:.1f}" text-anchor="middle" '
                   f'font-size="10" fill="{colour}">{html.escape(page.number(p.value))}</text>')
  legend_y = height - legend_height + 4
  out.append(charts._legend(list(series), left + 6, legend_y,  # noqa: SLF001
                            [False] + [True] * len(series)))
  hollow_y = legend_y + 14 * len(series)
  out.append(f'<circle cx="{left + 15}" cy="{hollow_y}" r="4" fill="#fff" stroke="#555" '
             f'stroke-width="2"/><text x="{left + 28}" y="{hollow_y + 4}">hollow: not blessed</text>')
  out.append('</svg>')
  return ''.join(out)


def holdout_series(holdouts: Mapping[int, Tuple[str, int, object]]
                   ) -> Tuple[Optional[str], int, List[Tuple[int, float]]]:
  """From version -> (holdout sha256, rows, value): the latest version's holdout sha256, its rows,
  and (version, value) of every version scored on those same bytes (others are not comparable)."""
  if not holdouts:
    return None, 0, []
  sha, rows, _ = holdouts[max(holdouts)]
  return sha, rows, [(n, float(value)) for n, (other, _, value) in sorted(holdouts.items())
                     if other == sha and isinstance(value, (int, float))
                     and not isinstance(value, bool)]
