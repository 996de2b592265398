"""A table a person can sort by clicking a column's header: plain HTML, one small inline script.

Each cell may carry ``data-sort`` (what it sorts by, e.g. an ISO time or a version number) beside
the text it shows; a cell without it sorts by its text, as a number when it reads as one
(``1,460`` included). The script is inline and loads nothing: the pages stay self-contained.
"""

from __future__ import annotations

import html
from typing import Any, Optional, Sequence, Union

from beam_pipelines.pages import page

SCRIPT = """<style>
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[data-dir="asc"]::after { content: " \\25B2"; font-size: 0.75em; }
table.sortable th[data-dir="desc"]::after { content: " \\25BC"; font-size: 0.75em; }
td.reason { text-align: left; min-width: 18em; max-width: 34em; overflow-wrap: anywhere; }
</style>
<script>
(function () {
  function key(row, col) {
    var cell = row.children[col];
    var text = cell.hasAttribute('data-sort') ? cell.getAttribute('data-sort') : cell.textContent.trim();
    var value = Number(text.replace(/,/g, ''));
    return text !== '' && !isNaN(value) ? value : text.toLowerCase();
  }
  document.querySelectorAll('table.sortable').forEach(function (table) {
    var heads = table.querySelectorAll('thead th');
    heads.forEach(function (th, col) {
      th.addEventListener('click', function () {
        var ascending = th.getAttribute('data-dir') !== 'asc';
        heads.forEach(function (h) { h.removeAttribute('data-dir'); });
        th.setAttribute('data-dir', ascending ? 'asc' : 'desc');
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = key(a, col), y = key(b, col);
          var order = typeof x === typeof y ? (x < y ? -1 : x > y ? 1 : 0)
                                            : (typeof x === 'number' ? -1 : 1);
          return ascending ? order : -order;
        });
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
  });
})();
</script>"""

Cell = Union[str, Any]


def td(value: Any, sort: Optional[Any] = None, key: Optional[str] = None, cls: str = '',
       raw: bool = False, title: Optional[str] = None) -> str:
  """One cell: ``value`` for people (``raw``: already HTML), ``sort`` what it sorts by, ``key``
  its ``data-key`` for the browser test."""
  attrs = ''
  if sort is not None:
    attrs += f' data-sort="{html.escape(str(sort))}"'
  if key:
    attrs += f' data-key="{html.escape(key)}"'
  if cls:
    attrs += f' class="{html.escape(cls)}"'
  if title:
    attrs += f' title="{html.escape(title)}"'
  return f'<td{attrs}>{value if raw else page.esc(value)}</td>'


def table(name: str, header: Sequence[str], rows: Sequence[Sequence[Cell]],
          row_class: Sequence[str] = ()) -> str:
  """A sortable table (``data-table="<name>"``); cells are values or pre-rendered ``<td``."""
  if not rows:
    return '<p class="muted">none</p>'
  head = ''.join(f'<th title="sort by {html.escape(h)}">{html.escape(h)}</th>' for h in header)
  body = []
  for i, row in enumerate(rows):
    cls = row_class[i] if i < len(row_class) and row_class[i] else ''
    cells = ''.join(v if isinstance(v, str) and v.startswith('<td') else page.cell(v) for v in row)
    body.append(f'<tr{f" class={cls}" if cls else ""}>{cells}</tr>')
  return (f'<table class="sortable" data-table="{html.escape(name)}"><thead><tr>{head}</tr>'
          f'</thead><tbody>{"".join(body)}</tbody></table>')
