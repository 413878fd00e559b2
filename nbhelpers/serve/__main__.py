"""``python -m nbhelpers.serve``: the HTTP API's command line (``nbhelpers.serve.cli``)."""

from __future__ import annotations

import sys

__all__: list[str] = []

if __name__ == "__main__":
    from nbhelpers.serve.cli import main

    sys.exit(main())
