"""A model card of one registered version, as HTML and as Markdown, from the same facts.

The sections follow Google's Model Card Toolkit schema: model details (name, version, sha256,
classifier and parameters, the code that built it, registration and aliases), model parameters'
data (the training window's spans, files and sha256, rows), quantitative analysis (overall
metrics, metrics by slice with a 95% AUC interval and small-slice warnings, the fixed holdout's
metrics when recorded) and considerations (overview, intended use, users, limitations, ethical
considerations: the text a pipeline folder states in its ``pipeline.yaml``; a field it leaves out
reads "not stated"). Every fact comes from the version's records; nothing is typed in by hand.
"""

from __future__ import annotations

import dataclasses
import html
from typing import Any, List, Mapping, Optional, Sequence, Tuple, Union, cast

from beam_pipelines.ml.artifacts import SliceMetrics
from beam_pipelines.pages import evaluation, page

NOT_STATED = 'not stated'
SLICE_COLUMNS = ('example_count', 'positive_count', 'auc', 'accuracy', 'log_loss')
OVERALL = ('auc', 'accuracy', 'log_loss', 'example_count', 'positive_count')


def card_names(name: str, version: int) -> Tuple[str, str]:
  """The site's files of a version's card: (HTML, Markdown)."""
  stem = f'model-card-{name}-v{int(version)}'
  return f'{stem}.html', f'{stem}.md'


def title_of(field: str) -> str:
  return field.replace('_', ' ').capitalize()


@dataclasses.dataclass(frozen=True)
class DataFile:
  path: str
  sha256: str
  size: Optional[int]


@dataclasses.dataclass(frozen=True)
class Holdout:
  sha256: Optional[str]
  rows: Optional[int]
  metrics: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class ModelCard:
  """What a version's card says; the site fills it from version.json, lineage.json, the
  evaluation's metrics.json and the pipeline definition."""
  name: str
  version: int
  model_sha256: Optional[str] = None
  registered_at: Optional[str] = None
  aliases: Sequence[str] = ()
  blessing: Optional[str] = None
  blessing_message: Optional[str] = None
  run_id: Optional[str] = None
  classifier: Optional[str] = None
  hyperparameters: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  code: Sequence[Tuple[str, Any]] = ()  # (what, value): version, source, commit, build, wheel
  label: Optional[str] = None
  features: Sequence[str] = ()
  categorical: Sequence[str] = ()
  span: Optional[str] = None
  window: Sequence[str] = ()
  files: Sequence[DataFile] = ()
  data_sha256: Optional[str] = None
  rows: Mapping[str, int] = dataclasses.field(default_factory=dict)  # split -> rows
  metrics: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # overall (version.json)
  slice_feature: Optional[str] = None
  slices: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
  holdout: Optional[Holdout] = None
  considerations: Sequence[Tuple[str, Optional[str]]] = ()  # (field, text or None)
  considerations_source: Optional[str] = None  # the pipeline.yaml they come from


# A card is a list of sections; a section a list of blocks, each rendered to HTML and Markdown.

@dataclasses.dataclass(frozen=True)
class Facts:
  rows: Sequence[Tuple[str, Any, str]]  # (label, value, data-key)


@dataclasses.dataclass(frozen=True)
class Table:
  header: Sequence[str]
  rows: Sequence[Sequence[Tuple[Any, str]]]  # (value, data-key or '')


@dataclasses.dataclass(frozen=True)
class Text:
  heading: str
  text: Optional[str]
  key: str


Block = Union[Facts, Table, Text]


def _parameter(value: Any) -> str:
  return f'{value:g}' if isinstance(value, float) else page.number(value)


def _details(card: ModelCard) -> List[Block]:
  params = ', '.join(f'{k} {_parameter(v)}' for k, v in sorted(card.hyperparameters.items()))
  facts: List[Tuple[str, Any, str]] = [
      ('name', card.name, 'name'), ('version', f'v{card.version}', 'version'),
      ('model sha256', card.model_sha256, 'model_sha256'),
      ('classifier', card.classifier, 'classifier'), ('parameters', params or 'none', 'parameters'),
      ('registered at', card.registered_at, 'registered_at'),
      ('aliases now', ', '.join(card.aliases) or 'none', 'aliases'),
      ('blessing', card.blessing, 'blessing'), ('blessing decision', card.blessing_message,
                                                'blessing_message'),
      ('CT run', card.run_id, 'run_id')]
  facts += [(f'code: {what}', value, f'code.{what}') for what, value in card.code]
  facts += [('label', card.label, 'label'),
            ('features', ', '.join(card.features) or 'n/a', 'features'),
            ('of which categorical', ', '.join(card.categorical) or 'none', 'categorical')]
  return [Facts(facts)]


def _data(card: ModelCard) -> List[Block]:
  rows = ', '.join(f'{split} {page.number(n)}' for split, n in sorted(card.rows.items()))
  blocks: List[Block] = [Facts([
      ('span', card.span, 'span'), ('training window', ', '.join(card.window) or 'n/a', 'window'),
      ('window sha256', card.data_sha256, 'data_sha256'),
      ('rows (after the CSV reader)', rows or 'n/a', 'rows')])]
  if card.files:
    blocks.append(Table(['file', 'sha256', 'bytes'],
                        [[(f.path, ''), (f.sha256, f'file.{i}.sha256'), (f.size, '')]
                         for i, f in enumerate(card.files)]))
  return blocks


def _interval(metrics: Mapping[str, Any]) -> str:
  count, positives = metrics.get('example_count') or 0, metrics.get('positive_count') or 0
  interval = evaluation.auc_interval(metrics.get('auc'), positives, count - positives)
  return f'{interval[0]:.4f} to {interval[1]:.4f}' if interval else 'n/a'


def _quantitative(card: ModelCard) -> List[Block]:
  blocks: List[Block] = [Table(
      ['metric', 'value'],
      [[(m, ''), (card.metrics.get(m), f'metric.{m}')] for m in OVERALL if m in card.metrics]
      + [[('auc 95% interval', ''), (_interval(card.metrics), 'metric.auc_interval')]])]
  if card.slices:
    rows = []
    for value, metrics in sorted(card.slices.items(), key=lambda kv: str(kv[0])):
      rows.append([(value, '')] + [(metrics.get(c), f'slice.{value}.{c}') for c in SLICE_COLUMNS]
                  + [(_interval(metrics), ''), (evaluation.small_slice_warning(cast(SliceMetrics, metrics)) or '', '')])
    blocks.append(Text('Metrics by slice', f'Sliced by {card.slice_feature}, on the same eval split.',
                       'slice_feature'))
    blocks.append(Table(['slice'] + list(SLICE_COLUMNS) + ['auc 95% interval', 'warning'], rows))
  if card.holdout is not None:
    blocks.append(Text('On the fixed holdout',
                       f'{page.number(card.holdout.rows)} rows (sha256 '
                       f'{(card.holdout.sha256 or "n/a")[:12]}), the same rows for every version.',
                       'holdout'))
    blocks.append(Table(['metric', 'value'],
                        [[(m, ''), (card.holdout.metrics.get(m), f'holdout.{m}')]
                         for m in OVERALL if m in card.holdout.metrics]))
  return blocks


def _considerations(card: ModelCard) -> List[Block]:
  blocks: List[Block] = [Text(title_of(field), text, f'consideration.{field}')
                         for field, text in card.considerations]
  if card.considerations_source is None:
    source = 'No pipeline definition of this model is readable: nothing is stated.'
  elif any(text for _, text in card.considerations):
    source = f'Stated in the model_card section of {card.considerations_source}.'
  else:
    source = f'{card.considerations_source} has no model_card section: nothing is stated.'
  blocks.append(Text('', source, 'considerations_source'))
  return blocks


def sections(card: ModelCard) -> List[Tuple[str, List[Block]]]:
  return [('Model details', _details(card)), ('Data', _data(card)),
          ('Quantitative analysis', _quantitative(card)), ('Considerations', _considerations(card))]


def _cell(value: Any, key: str) -> str:
  return page.cell(value, key or None)


def to_html(card: ModelCard, markdown: Optional[str] = None, nav: str = '') -> str:
  """The card as a self-contained page; ``markdown``: the link to its Markdown twin."""
  body = [f'<h1>Model card: {html.escape(card.name)} v{card.version}</h1>']
  if markdown:
    body.append(f'<p class="small">Also as <a href="{html.escape(markdown)}">Markdown</a>.</p>')
  for title, blocks in sections(card):
    body.append(f'<h2>{html.escape(title)}</h2>')
    for block in blocks:
      if isinstance(block, Facts):
        body.append('<table class="facts">' + ''.join(
            f'<tr><th>{html.escape(label)}</th><td class="text" data-key="{html.escape(key)}">'
            f'{page.esc(value)}</td></tr>' for label, value, key in block.rows) + '</table>')
      elif isinstance(block, Table):
        body.append(page.table(block.header, [[_cell(v, k) for v, k in row] for row in block.rows]))
      else:
        if block.heading:
          body.append(f'<h3>{html.escape(block.heading)}</h3>')
        shown = block.text or NOT_STATED
        cls = '' if block.text else ' class="muted"'
        body.append(f'<p data-key="{html.escape(block.key)}"{cls}>{html.escape(shown)}</p>')
  wrap = ('<style>td { overflow-wrap: anywhere; }'  # paths and hashes wrap in their cell
          ' table.facts th { white-space: nowrap; font-weight: normal; }</style>')
  return page.shell(f'Model card: {card.name} v{card.version}', '\n'.join(body) + wrap, nav)


def _md(value: Any) -> str:
  return page.number(value).replace('|', '\\|').replace('\n', ' ')


def to_markdown(card: ModelCard) -> str:
  """The card as Markdown (GitHub tables), the same facts as ``to_html``."""
  out = [f'# Model card: {card.name} v{card.version}', '']
  for title, blocks in sections(card):
    out += [f'## {title}', '']
    for block in blocks:
      if isinstance(block, Facts):
        out += ['| | |', '|---|---|'] + [f'| {_md(label)} | {_md(value)} |'
                                          for label, value, _ in block.rows] + ['']
      elif isinstance(block, Table):
        out += ['| ' + ' | '.join(_md(h) for h in block.header) + ' |',
                '|' + '---|' * len(block.header)]
        out += ['| ' + ' | '.join(_md(v) for v, _ in row) + ' |' for row in block.rows] + ['']
      else:
        if block.heading:
          out += [f'### {block.heading}', '']
        out += [block.text or f'_{NOT_STATED}_', '']
  return '\n'.join(out)
