"""The evaluation's HTML page: verdict and reasons, overall metrics per model, metrics per slice."""

from __future__ import annotations

import html
from typing import Any, Dict, List

COLUMNS = ('example_count', 'positive_count', 'auc', 'accuracy', 'log_loss', 'auc_error_bound')
_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 4px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.BLESSED { color: #176f2c; } .NOT_BLESSED { color: #b00020; }
.fail { background: #fde7ea; } .pass { background: #e8f5e9; }
"""


def _cell(value: Any) -> str:
  if value is None:
    return '<td>n/a</td>'
  if isinstance(value, float):
    return f'<td>{value:.4f}</td>'
  return f'<td>{html.escape(str(value))}</td>'


def _table(header: List[str], rows: List[List[Any]]) -> str:
  head = ''.join(f'<th>{html.escape(h)}</th>' for h in header)
  body = ''.join('<tr>' + ''.join(_cell(v) for v in row) + '</tr>' for row in rows)
  return f'<table><tr>{head}</tr>{body}</table>'


def render(document: Dict[str, Any], record: Dict[str, Any]) -> str:
  """metrics.json document + blessing record -> a standalone HTML page."""
  models = document['models']
  status = record['status']
  parts = [f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>Model evaluation: {status}'
           f'</title><style>{_STYLE}</style></head><body>',
           f'<h1>Model evaluation: <span class="{status}">{status}</span></h1>',
           f'<p>{html.escape(record["message"])}</p>']
  if record.get('rubber_stamped'):
    parts.append('<p>No baseline model: judged on value thresholds alone (rubber stamp).</p>')
  checks = record.get('checks', [])
  if checks:
    parts.append('<h2>Blessing checks</h2><table><tr><th>metric</th><th>threshold</th>'
                 '<th>result</th><th>detail</th></tr>')
    for check in checks:
      verdict = 'pass' if check['passed'] else 'fail'
      parts.append(f'<tr class="{verdict}"><td>{html.escape(check["metric"])}</td>'
                   f'<td>{html.escape(check["kind"])}</td><td>{verdict.upper()}</td>'
                   f'<td>{html.escape(check["message"])}</td></tr>')
    parts.append('</table>')
  parts.append('<h2>Overall</h2>')
  parts.append(_table(['model'] + list(COLUMNS),
                      [[name] + [entry['overall'].get(c) for c in COLUMNS]
                       for name, entry in models.items()]))
  feature = document.get('slice_feature')
  if feature:
    parts.append(f'<h2>Slices by {html.escape(feature)}</h2>')
    for name, entry in models.items():
      parts.append(f'<h3>{html.escape(name)}</h3>')
      parts.append(_table([feature] + list(COLUMNS),
                          [[value] + [metrics.get(c) for c in COLUMNS]
                           for value, metrics in sorted(entry['slices'].items())]))
  parts.append('<h2>Models</h2>')
  parts.append(_table(['model', 'directory', 'sha256', 'data fingerprint'],
                      [[name, e['model_dir'], e['model_sha256'], e.get('data_fingerprint')]
                       for name, e in models.items()]))
  parts.append('</body></html>\n')
  return '\n'.join(parts)
