"""beam-pipelines: Beam pipelines with a local CI/CD/CT harness (build, test, deploy, retrain)."""

import warnings as _warnings

__version__ = '0.1.0'

# google.api_core warns on every import that Python 3.11 support ends in 2027: noise for users of
# this package (the lock pins Python 3.11 deliberately, see README). Only that message is silenced.
_warnings.filterwarnings('ignore', message=r'You are using a Python version', category=FutureWarning)
