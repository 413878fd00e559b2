"""``python -m nbhelpers.evaluate``: accuracy of the whole prediction path on labelled photos
(``nbhelpers.predict.evaluate_cli``)."""

from __future__ import annotations

import sys

__all__: list[str] = []

if __name__ == "__main__":
    from nbhelpers.predict.evaluate_cli import main

    sys.exit(main())
