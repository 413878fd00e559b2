"""``python -m nbhelpers.train``: the training command line (``nbhelpers.training.cli``), kept at this name
so batch jobs and ``torchrun -m nbhelpers.train`` keep working."""

from __future__ import annotations

import sys

__all__: list[str] = []

if __name__ == "__main__":
    from nbhelpers.training.cli import main

    sys.exit(main())
