"""``python -m beam_pipelines.ct``: continuous training (see ``beam_pipelines.ct.cli``)."""

import logging
import sys

from beam_pipelines.ct.cli import main

if __name__ == '__main__':
  logging.getLogger().setLevel(logging.WARNING)
  sys.exit(main(sys.argv[1:]))
