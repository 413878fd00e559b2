"""``python -m nbhelpers.predict``: the prediction command line (``nbhelpers.predict.cli``)."""

from __future__ import annotations

import sys

__all__: list[str] = []

if __name__ == "__main__":
    from nbhelpers.predict.cli import main

    sys.exit(main())
