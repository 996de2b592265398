"""Small inline-SVG charts for the HTML reports: lines (ROC, calibration, a metric over versions),
grouped bars (distributions), a distance meter and a left-to-right graph (lineage).

Inline SVG needs no library and no request: the pages open offline, from ``file://`` or from a
bucket. Every drawn data mark has ``class="mark"`` and every chart ``class="chart"`` and
``data-chart="<name>"``, so a browser test can check that each chart is present and not empty.
"""

from __future__ import annotations

import html
import math
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

PALETTE = ('#1f77b4', '#ff7f0e', '#2ca02c', '#9467bd', '#8c564b', '#e377c2')
Point = Tuple[float, float]


def _open(name: str, width: int, height: int, title: str) -> str:
  return (f'<svg class="chart" data-chart="{html.escape(name)}" role="img" '
          f'xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
          f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">'
          f'<title>{html.escape(title)}</title>')


def _legend(names: Sequence[str], x: float, y: float, dashed: Sequence[bool] = ()) -> str:
  parts = []
  for i, name in enumerate(names):
    colour = PALETTE[i % len(PALETTE)]
    dash = ' stroke-dasharray="5 3"' if i < len(dashed) and dashed[i] else ''
    parts.append(f'<line x1="{x}" y1="{y + 14 * i}" x2="{x + 18}" y2="{y + 14 * i}" '
                 f'stroke="{colour}" stroke-width="2.5"{dash}/>'
                 f'<text x="{x + 22}" y="{y + 14 * i + 4}">{html.escape(name)}</text>')
  return ''.join(parts)


def human_number(value: Optional[float]) -> str:
  """A number as people read it, never in exponent notation: 1,460 / 12.35 / 0.25 / 0.0412 /
  3.2M / -7; None and NaN read "n/a". Whole numbers below a million get thousands separators;
  from a million on, three significant digits and M, B or T; other values keep about three
  significant digits (two decimals from 1 to 100, one from 100 to 1,000)."""
  if value is None:
    return 'n/a'
  v = float(value)
  if math.isnan(v):
    return 'n/a'
  if math.isinf(v):
    return '∞' if v > 0 else '-∞'
  sign, a = ('-' if v < 0 else ''), abs(v)
  for limit, suffix in ((1e12, 'T'), (1e9, 'B'), (1e6, 'M')):
    if round(a, 0) >= limit:
      scaled = a / limit
      decimals = 2 if scaled < 10 else 1 if scaled < 100 else 0
      return f'{sign}{_trim(f"{scaled:,.{decimals}f}")}{suffix}'
  if a == 0:
    return '0'
  decimals = 0 if a >= 1000 else 1 if a >= 100 else 2 if a >= 1 else 2 - math.floor(math.log10(a))
  rounded = round(a, decimals)
  if rounded == 0:
    return '0'
  if rounded >= 1000 or rounded == int(rounded):
    return f'{sign}{rounded:,.0f}'
  return f'{sign}{_trim(f"{rounded:.{decimals}f}")}'


def human_percent(share: Optional[float]) -> str:
  """A share (0.456) as a percentage for people: 45.6% / 0.1% / <0.1% / 0%."""
  if share is None or math.isnan(share):
    return 'n/a'
  if 0 < share < 0.001:
    return '<0.1%'
  return f'{_trim(f"{100 * share:.1f}")}%'


def _trim(text: str) -> str:
  return text.rstrip('0').rstrip('.') if '.' in text else text


def _nice_step(raw: float) -> float:
  magnitude = 10 ** math.floor(math.log10(raw))
  return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * (1 - 1e-9))


def _ticks(low: float, high: float, count: int = 5) -> List[float]:
  """Round tick values (multiples of 1, 2, 2.5 or 5 times a power of ten) inside [low, high]."""
  if not high > low:
    return [low]
  step = _nice_step((high - low) / max(count - 1, 1))
  first = math.ceil(low / step - 1e-9)
  ticks = [round(i * step, 12) for i in range(first, math.floor(high / step + 1e-9) + 1)]
  return ticks if len(ticks) >= 2 else [low, high]


def _tick_label(value: float) -> str:
  return human_number(value)


def line_chart(name: str, series: Mapping[str, Sequence[Point]], x_label: str, y_label: str,
               x_range: Optional[Tuple[float, float]] = None,
               y_range: Optional[Tuple[float, float]] = None, diagonal: bool = False,
               markers: bool = False, x_names: Optional[Sequence[str]] = None,
               width: int = 420, height: int = 320, title: str = '') -> str:
  """Polylines of (x, y) points, one per series; ``diagonal`` draws y = x (chance, perfect
  calibration); ``x_names`` labels integer x positions (e.g. versions)."""
  left, right, top, bottom = 52, 16, 14, 44
  legend_height = 14 * len(series)
  plot_w, plot_h = width - left - right, height - top - bottom - legend_height
  xs = [x for points in series.values() for x, _ in points]
  ys = [y for points in series.values() for _, y in points]
  x0, x1 = x_range or ((min(xs), max(xs)) if xs else (0.0, 1.0))
  y0, y1 = y_range or ((min(ys), max(ys)) if ys else (0.0, 1.0))
  if x1 <= x0:
    x0, x1 = x0 - 0.5, x1 + 0.5
  if y1 <= y0:
    pad = abs(y0) * 0.01 or 0.01
    y0, y1 = y0 - pad, y1 + pad

  def sx(x: float) -> float:
    return left + (x - x0) / (x1 - x0) * plot_w

  def sy(y: float) -> float:
    return top + plot_h - (y - y0) / (y1 - y0) * plot_h

  out = [_open(name, width, height, title or f'{y_label} by {x_label}'),
         f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#bbb"/>']
  for t in _ticks(y0, y1):
    out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" '
               f'stroke="#eee"/><text x="{left - 4}" y="{sy(t) + 4:.1f}" text-anchor="end">'
               f'{_tick_label(t)}</text>')
  if x_names:
    for i, label in enumerate(x_names):
      out.append(f'<text x="{sx(i):.1f}" y="{top + plot_h + 14}" text-anchor="middle">'
                 f'{html.escape(label)}</text>')
  else:
    for t in _ticks(x0, x1):
      out.append(f'<text x="{sx(t):.1f}" y="{top + plot_h + 14}" text-anchor="middle">'
                 f'{_tick_label(t)}</text>')
  out.append(f'<text x="{left + plot_w / 2}" y="{top + plot_h + 30}" text-anchor="middle">'
             f'{html.escape(x_label)}</text>'
             f'<text transform="translate(12 {top + plot_h / 2}) rotate(-90)" '
             f'text-anchor="middle">{html.escape(y_label)}</text>')
  if diagonal:
    out.append(f'<line x1="{sx(max(x0, y0)):.1f}" y1="{sy(max(x0, y0)):.1f}" '
               f'x2="{sx(min(x1, y1)):.1f}" y2="{sy(min(x1, y1)):.1f}" stroke="#999" '
               f'stroke-dasharray="4 4"/>')
  for i, (label, points) in enumerate(series.items()):
    colour = PALETTE[i % len(PALETTE)]
    coords = ' '.join(f'{sx(x):.1f},{sy(y):.1f}' for x, y in points)
    dash = ' stroke-dasharray="6 3"' if i else ''
    if len(points) > 1:
      out.append(f'<polyline class="mark" data-series="{html.escape(label)}" points="{coords}" '
                 f'fill="none" stroke="{colour}" stroke-width="2"{dash}/>')
    if markers or len(points) == 1:
      out.extend(f'<circle class="mark" cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3.5" '
                 f'fill="{colour}"><title>{html.escape(label)}: {y:.4f}</title></circle>'
                 for x, y in points)
  out.append(_legend(list(series), left + 6, height - legend_height + 2, [False] + [True] * 8))
  out.append('</svg>')
  return ''.join(out)


def bar_chart(name: str, categories: Sequence[str], series: Mapping[str, Sequence[float]],
              y_label: str, width: int = 460, height: int = 220, title: str = '') -> str:
  """Grouped vertical bars: one group per category, one bar per series (e.g. two datasets)."""
  left, right, top, bottom = 48, 10, 10, 54
  legend_height = 14 * len(series)
  plot_w, plot_h = width - left - right, height - top - bottom - legend_height
  top_value = max([v for values in series.values() for v in values] + [0.0]) or 1.0
  group = plot_w / max(len(categories), 1)
  bar = group * 0.8 / max(len(series), 1)
  out = [_open(name, width, height, title or y_label),
         f'<line x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}" '
         f'stroke="#999"/>']
  for t in _ticks(0.0, top_value, 3):
    y = top + plot_h - t / top_value * plot_h
    out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
               f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{_tick_label(t)}</text>')
  step = max(1, len(categories) // 10)
  for c, category in enumerate(categories):
    gx = left + c * group + group * 0.1
    for s, (label, values) in enumerate(series.items()):
      value = values[c]
      h = value / top_value * plot_h
      out.append(f'<rect class="mark" x="{gx + s * bar:.1f}" y="{top + plot_h - h:.1f}" '
                 f'width="{max(bar - 1, 1):.1f}" height="{h:.1f}" fill="{PALETTE[s % len(PALETTE)]}">'
                 f'<title>{html.escape(label)} {html.escape(category)}: {human_number(value)}'
                 f'</title></rect>')
    if c % step == 0:
      text = category if len(category) <= 12 else category[:11] + '…'
      out.append(f'<text x="{gx + group * 0.4:.1f}" y="{top + plot_h + 12}" text-anchor="end" '
                 f'transform="rotate(-30 {gx + group * 0.4:.1f} {top + plot_h + 12})">'
                 f'{html.escape(text)}</text>')
  out.append(f'<text transform="translate(11 {top + plot_h / 2}) rotate(-90)" '
             f'text-anchor="middle">{html.escape(y_label)}</text>')
  out.append(_legend(list(series), left + 6, height - legend_height + 2))
  out.append('</svg>')
  return ''.join(out)


def distance_meter(name: str, value: float, threshold: Optional[float],
                   floor: Optional[float] = None, width: int = 460, height: int = 46) -> str:
  """A horizontal bar: the distance, a red tick at the threshold, a grey band up to the noise
  floor (what sampling alone reaches between samples of the sizes compared, when known)."""
  scale_max = max(value, threshold or 0.0, floor or 0.0) * 1.25 or 1.0
  left, plot_w = 8, width - 16

  def sx(x: float) -> float:
    return left + x / scale_max * plot_w

  over = threshold is not None and value > threshold
  out = [_open(name, width, height, f'distance {human_number(value)} vs threshold '
                               f'{human_number(threshold)}')]
  if floor is not None:
    out.append(f'<rect x="{left}" y="6" width="{sx(floor) - left:.1f}" height="16" fill="#e6e6e6">'
               f'<title>noise floor {human_number(floor)}</title></rect>')
  out.append(f'<rect class="mark" x="{left}" y="10" width="{max(sx(value) - left, 1.5):.1f}" '
             f'height="8" fill="{"#b00020" if over else "#1f77b4"}"><title>distance '
             f'{human_number(value)}'
             f'</title></rect>')
  if threshold is not None:
    out.append(f'<line x1="{sx(threshold):.1f}" x2="{sx(threshold):.1f}" y1="2" y2="26" '
               f'stroke="#b00020" stroke-width="2"/><text x="{sx(threshold):.1f}" y="38" '
               f'text-anchor="middle" fill="#b00020">threshold {human_number(threshold)}</text>')
  out.append(f'<text x="{left}" y="38">0</text></svg>')
  return ''.join(out)


def flow_graph(name: str, columns: Sequence[Sequence[Tuple[str, str, Optional[str]]]],
               edges: Sequence[Tuple[str, str]], width: int = 720, title: str = '') -> str:
  """A left-to-right graph: ``columns`` of nodes (id, label, link or None), ``edges`` by id."""
  node_w, node_h, gap = 200, 38, 14
  rows = max((len(c) for c in columns), default=1)
  height = rows * (node_h + gap) + gap
  col_x = [10 + i * (width - node_w - 20) / max(len(columns) - 1, 1) for i in range(len(columns))]
  where: Dict[str, Tuple[float, float]] = {}
  boxes = []
  for c, nodes in enumerate(columns):
    offset = (height - len(nodes) * (node_h + gap) + gap) / 2
    for r, (node_id, label, link) in enumerate(nodes):
      x, y = col_x[c], offset + r * (node_h + gap)
      where[node_id] = (x, y)
      lines = label.split('\n')[:2]
      text = ''.join(f'<text x="{x + 8:.1f}" y="{y + 15 + 13 * i:.1f}">{html.escape(t[:32])}</text>'
                     for i, t in enumerate(lines))
      box = (f'<rect class="mark" x="{x:.1f}" y="{y:.1f}" width="{node_w}" height="{node_h}" rx="5" '
             f'fill="#f3f7fb" stroke="#5b8bb5"><title>{html.escape(label)}</title></rect>{text}')
      boxes.append(f'<a href="{html.escape(link)}">{box}</a>' if link else box)
  arrows = []
  for source, target in edges:
    if source in where and target in where:
      (x0, y0), (x1, y1) = where[source], where[target]
      arrows.append(f'<line x1="{x0 + node_w:.1f}" y1="{y0 + node_h / 2:.1f}" x2="{x1 - 2:.1f}" '
                    f'y2="{y1 + node_h / 2:.1f}" stroke="#888" marker-end="url(#arrow-{name})"/>')
  marker = (f'<defs><marker id="arrow-{name}" viewBox="0 0 10 10" refX="10" refY="5" '
            f'markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" '
            f'fill="#888"/></marker></defs>')
  return (_open(name, width, int(height), title or 'lineage') + marker + ''.join(arrows)
          + ''.join(boxes) + '</svg>')


def calibration_chart(name: str, series: Mapping[str, Sequence[Tuple[float, float, int]]],
                      width: int = 420, height: int = 420, title: str = '') -> str:
  """A reliability diagram whose points weigh their rows, over a histogram of the rows per bin.

  ``series``: per model, (mean predicted probability, observed positive rate, rows) per score bin.
  A point's area is proportional to its rows (a bin of 2 rows is a dot, one of 3,464 a disc);
  below, one bar per bin and model, its height the rows of the bin, on a square-root scale so
  that small bins stay visible, its count written above it.
  """
  left, right, top = 52, 16, 14
  legend_height = 14 * len(series)
  strip_h, gap = 90, 34
  plot_w = width - left - right
  plot_h = height - top - gap - strip_h - 30 - legend_height
  counts = [c for points in series.values() for _, _, c in points]
  largest = max(counts + [1])

  def sx(x: float) -> float:
    return left + min(max(x, 0.0), 1.0) * plot_w

  def sy(y: float) -> float:
    return top + plot_h - min(max(y, 0.0), 1.0) * plot_h

  out = [_open(name, width, height, title or 'calibration with rows per bin'),
         f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#bbb"/>',
         f'<line x1="{sx(0):.1f}" y1="{sy(0):.1f}" x2="{sx(1):.1f}" y2="{sy(1):.1f}" stroke="#999" '
         f'stroke-dasharray="4 4"/>']
  for t in _ticks(0.0, 1.0):
    out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" '
               f'stroke="#eee"/><text x="{left - 4}" y="{sy(t) + 4:.1f}" text-anchor="end">'
               f'{_tick_label(t)}</text><text x="{sx(t):.1f}" y="{top + plot_h + 14}" '
               f'text-anchor="middle">{_tick_label(t)}</text>')
  out.append(f'<text transform="translate(12 {top + plot_h / 2}) rotate(-90)" '
             f'text-anchor="middle">observed positive rate</text>')
  for i, (label, points) in enumerate(series.items()):
    colour = PALETTE[i % len(PALETTE)]
    dash = ' stroke-dasharray="6 3"' if i else ''
    if len(points) > 1:
      coords = ' '.join(f'{sx(p):.1f},{sy(o):.1f}' for p, o, _ in points)
      out.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="1.5"'
                 f'{dash} opacity="0.7"/>')
    for p, o, count in points:
      radius = 2.0 + 9.0 * (count / largest) ** 0.5
      out.append(f'<circle class="mark" data-count="{count}" cx="{sx(p):.1f}" cy="{sy(o):.1f}" '
                 f'r="{radius:.1f}" fill="{colour}" fill-opacity="0.55" stroke="{colour}">'
                 f'<title>{html.escape(label)}: predicted {p:.3f}, observed {o:.3f}, '
                 f'{count:,} rows</title></circle>')
  strip_top = top + plot_h + gap
  out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{strip_top + strip_h}" '
             f'y2="{strip_top + strip_h}" stroke="#999"/><text transform="translate(12 '
             f'{strip_top + strip_h / 2}) rotate(-90)" text-anchor="middle">rows</text>')
  bins = 10
  bar = plot_w / bins * 0.8 / max(len(series), 1)
  for i, (label, points) in enumerate(series.items()):
    colour = PALETTE[i % len(PALETTE)]
    for p, _, count in points:
      b = min(int(p * bins), bins - 1)
      h = max((count / largest) ** 0.5 * (strip_h - 30), 1.0)
      x = left + b * plot_w / bins + plot_w / bins * 0.1 + i * bar
      out.append(f'<rect class="mark" data-count="{count}" x="{x:.1f}" '
                 f'y="{strip_top + strip_h - h:.1f}" width="{max(bar - 1, 1):.1f}" height="{h:.1f}" '
                 f'fill="{colour}"><title>{html.escape(label)}: {count:,} rows with a score in '
                 f'[{b / bins:.1f}, {(b + 1) / bins:.1f})</title></rect>')
      tx, ty = x + bar / 2 + 3, strip_top + strip_h - h - 2
      out.append(f'<text x="{tx:.1f}" y="{ty:.1f}" font-size="8" transform="rotate(-90 {tx:.1f} '
                 f'{ty:.1f})">{count:,}</text>')
  out.append(f'<text x="{left + plot_w / 2}" y="{strip_top + strip_h + 14}" '
             f'text-anchor="middle">mean predicted probability (bins of 0.1)</text>')
  out.append(_legend(list(series), left + 6, height - legend_height + 2, [False] + [True] * 8))
  out.append('</svg>')
  return ''.join(out)


def horizontal_bar_chart(name: str, categories: Sequence[str],
                         series: Mapping[str, Sequence[Optional[float]]], x_label: str,
                         errors: Optional[Mapping[str, Sequence[Optional[float]]]] = None,
                         width: int = 520, title: str = '') -> str:
  """One row per category (e.g. a feature), one bar per series (e.g. a model), from a zero line
  (values may be negative); ``errors`` draws a whisker of +/- that much (e.g. a std)."""
  left, right, top, row_h = 150, 20, 10, 8 + 12 * max(len(series), 1)
  legend_height = 14 * len(series)
  height = top + row_h * max(len(categories), 1) + 36 + legend_height
  plot_w = width - left - right
  values = [v for vs in series.values() for v in vs if v is not None]
  spreads = [e for es in (errors or {}).values() for e in es if e is not None]
  high = max(values + [0.0]) + max(spreads + [0.0])
  low = min(values + [0.0]) - max(spreads + [0.0])
  if high <= low:
    high = low + 1.0

  def sx(x: float) -> float:
    return left + (x - low) / (high - low) * plot_w

  out = [_open(name, width, int(height), title or x_label)]
  for t in _ticks(low, high, 4):
    out.append(f'<line x1="{sx(t):.1f}" x2="{sx(t):.1f}" y1="{top}" '
               f'y2="{top + row_h * len(categories)}" stroke="#eee"/><text x="{sx(t):.1f}" '
               f'y="{top + row_h * len(categories) + 14}" text-anchor="middle">'
               f'{t:.3f}</text>')
  out.append(f'<line x1="{sx(0):.1f}" x2="{sx(0):.1f}" y1="{top}" '
             f'y2="{top + row_h * len(categories)}" stroke="#666"/>')
  for c, category in enumerate(categories):
    y0 = top + c * row_h + 4
    text = category if len(category) <= 22 else category[:21] + '…'
    out.append(f'<text x="{left - 6}" y="{y0 + row_h / 2:.1f}" text-anchor="end">'
               f'{html.escape(text)}</text>')
    for s, (label, vs) in enumerate(series.items()):
      value = vs[c]
      if value is None:
        continue
      colour = PALETTE[s % len(PALETTE)]
      x0, x1 = sorted((sx(0), sx(value)))
      y = y0 + s * 12
      out.append(f'<rect class="mark" x="{x0:.1f}" y="{y:.1f}" width="{max(x1 - x0, 1.5):.1f}" '
                 f'height="10" fill="{colour}"><title>{html.escape(label)} '
                 f'{html.escape(category)}: {value:.4f}</title></rect>')
      error = (errors or {}).get(label, [None] * len(categories))[c]
      if error:
        out.append(f'<line x1="{sx(value - error):.1f}" x2="{sx(value + error):.1f}" '
                   f'y1="{y + 5:.1f}" y2="{y + 5:.1f}" stroke="#333"/>')
  out.append(f'<text x="{left + plot_w / 2}" y="{top + row_h * len(categories) + 28}" '
             f'text-anchor="middle">{html.escape(x_label)}</text>')
  out.append(_legend(list(series), left + 6, height - legend_height + 2))
  out.append('</svg>')
  return ''.join(out)
