"""The HTML pages people read, self-contained (inline style and SVG, nothing fetched).

``page`` (the style sheet, numbers for people, tables, the page shell), ``charts`` (inline SVG),
``validation`` (validation's ``report.html``), ``evaluation`` (evaluation's ``report.html``).
Stands on ``store`` and ``ml`` (the artifact contract); the pipelines and the harness's site
(``harness.site``) use it.
"""
