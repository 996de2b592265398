"""Pieces of every HTML page we write: one style sheet, numbers for people, tables, a page shell.

Pages are self-contained: no script, no font, no image is fetched; charts are inline SVG
(``beam_pipelines.pages.charts``). A value that a browser test compares with a JSON artifact carries
``data-key`` (what it is) beside its text.
"""

from __future__ import annotations

import html
from typing import Any, Iterable, Optional, Sequence

from beam_pipelines.store.console import number  # numbers for people: one definition

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em 2em; color: #222; max-width: 1100px; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5em 0 1.2em; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 3px 9px; text-align: right; vertical-align: top; }
th { background: #f4f4f4; text-align: left; }
th:first-child, td:first-child, td.text { text-align: left; }
.ok, .BLESSED, .passed, .pass { color: #176f2c; }
.drift, .warn { color: #a15c00; }
.anomalous, .NOT_BLESSED, .failed, .fail { color: #b00020; }
tr.fail td { background: #fde7ea; } tr.warn td { background: #fff4e0; }
.muted { color: #777; } .small { font-size: 0.85em; }
.badge { display: inline-block; padding: 0 6px; border-radius: 3px; font-size: 0.85em;
         border: 1px solid currentColor; margin-left: 4px; }
.charts { display: flex; flex-wrap: wrap; gap: 1.2em; align-items: flex-start; }
figure { margin: 0; } figcaption { font-size: 0.85em; color: #555; max-width: 460px; }
svg.chart { background: #fff; border: 1px solid #e4e4e4; }
section.feature { margin-bottom: 1.5em; }
nav a { margin-right: 1em; }
.scroll { overflow-x: auto; max-width: 100%; }
td.values { text-align: left; max-width: 24em; overflow-wrap: anywhere; }
p, li, figcaption { overflow-wrap: anywhere; } td.text { overflow-wrap: break-word; }
"""


def esc(value: Any) -> str:
  return html.escape(number(value))


def cell(value: Any, key: Optional[str] = None, cls: str = '') -> str:
  """One table cell; ``key`` becomes ``data-key`` (the browser test reads it back)."""
  attrs = (f' data-key="{html.escape(key)}"' if key else '') + (f' class="{cls}"' if cls else '')
  text_like = isinstance(value, str) and not cls
  return f'<td{attrs}{" class=text" if text_like else ""}>{esc(value)}</td>'


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], row_class: Sequence[str] = ()) -> str:
  """A table of plain values (each cell through ``number``); cells may be pre-rendered ``<td``."""
  head = ''.join(f'<th>{html.escape(h)}</th>' for h in header)
  body = []
  for i, row in enumerate(rows):
    cls = row_class[i] if i < len(row_class) and row_class[i] else ''
    cells = ''.join(v if isinstance(v, str) and v.startswith('<td') else cell(v) for v in row)
    body.append(f'<tr{f" class={cls}" if cls else ""}>{cells}</tr>')
  if not body:
    return '<p class="muted">none</p>'
  return f'<table><tr>{head}</tr>{"".join(body)}</table>'


def shell(title: str, body: str, nav: str = '') -> str:
  """The whole page: doctype, charset, inline style, ``body``; nothing loaded from elsewhere."""
  return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
          f'<meta name="viewport" content="width=device-width, initial-scale=1">'
          f'<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n<body>\n'
          f'{nav}{body}\n</body></html>\n')


def scroll(content: str) -> str:
  """``content`` (a wide table) in a box that scrolls sideways, so the page itself never does."""
  return f'<div class="scroll">{content}</div>'


def figure(svg: str, caption: str) -> str:
  return f'<figure>{svg}<figcaption>{html.escape(caption)}</figcaption></figure>'
