"""Flex Template entry point: the word count of the beam-pipelines wheel installed in the image.

The launcher runs this file with the template's parameters as flags; the job's workers run in the
same image (``sdk_container_image``), so nothing is staged.
"""

import logging

from beam_pipelines import wordcount

if __name__ == '__main__':
  logging.getLogger().setLevel(logging.INFO)
  wordcount.run()
