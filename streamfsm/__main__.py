"""``python -m streamfsm`` runs the command line."""

from __future__ import annotations

import sys

from streamfsm.cli import main

sys.exit(main())
