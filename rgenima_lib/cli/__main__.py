"""``python -m rgenima_lib.cli`` (torchrun starts fine-tuning this way)."""

import sys

from rgenima_lib.cli import main

sys.exit(main())
