"""Serve a notebook as a web page with Voila, with papermill-style parameters (``make serve``).

    python -m nbhelpers.predict.web_page notebooks/08_predict.ipynb --port 8866 --set MODEL=resnet18

Voila runs every cell of a notebook on each visit, in a kernel of its own. The page is therefore a copy
(``page_notebook``) without the cells tagged ``report-only`` (notebook 08's real-photo evaluation, examples,
synthetic check and its ``summary.json`` update, which ``make reports`` runs with papermill): a visit runs
the upload app only and writes nothing to the reports. The copy also carries the ``--set`` parameters in
a papermill ``injected-parameters`` cell (``parameterized_copy``, the same mechanism as the batch runs).

``VoilaServer`` starts Voila on loopback, waits until it answers and stops it (a context manager). It
raises tornado's websocket message limit (10 MiB by default) to ``WEBSOCKET_MAX_MESSAGE_MB``: the upload
widget sends the files of one choice in one message, and a message over the limit closes the page's
connection to its kernel without a word (the page then stops answering), so that is the hard limit of
one choice of files; the upload app refuses single files over its own, lower limit with a message.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Sequence

__all__ = ["parameterized_copy", "page_notebook", "free_port", "VoilaServer", "main", "REPORT_ONLY_TAG",
           "WEBSOCKET_MAX_MESSAGE_MB"]

REPORT_ONLY_TAG = "report-only"  # cells with this tag run in make reports (papermill) and are left out of the page
WEBSOCKET_MAX_MESSAGE_MB = 64  # MiB: the largest message (all files of one upload choice) the page's server takes


def parameterized_copy(notebook: str | Path, parameters: dict[str, object], destination: str | Path,
                       remove_tags: Sequence[str] = ()) -> Path:
    """Write ``notebook`` with ``parameters`` injected after its ``parameters`` cell, and without the cells
    tagged with any of ``remove_tags``, to ``destination``. Raises ``KeyError`` for an undeclared parameter."""
    import nbformat
    import papermill
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    source = load_notebook_node(str(notebook))
    declared = set(papermill.inspect_notebook(str(notebook)))  # the same parameter reading as the batch runs
    unknown = sorted(set(parameters) - declared)
    if unknown:
        raise KeyError(f"{notebook}: no such parameter(s) {unknown}; the parameters cell declares {sorted(declared)}")
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    copy = parameterize_notebook(source, dict(parameters)) if parameters else source
    copy.cells = [cell for cell in copy.cells if not set(remove_tags) & set(cell.get("metadata", {}).get("tags", []))]
    nbformat.write(copy, str(destination))
    return destination


def page_notebook(notebook: str | Path, parameters: dict[str, object] | None = None,
                  destination: str | Path | None = None) -> Path:
    """The notebook as the web page runs it: without its ``report-only`` cells, with ``parameters`` injected;
    written to ``destination`` (default: ``served_NAME.ipynb`` beside it, so that its relative paths
    still hold; not a hidden file, which Voila refuses to serve)."""
    notebook = Path(notebook)
    destination = destination or notebook.with_name(f"served_{notebook.stem}.ipynb")
    return parameterized_copy(notebook, parameters or {}, destination, remove_tags=(REPORT_ONLY_TAG,))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class VoilaServer:
    """Voila serving one notebook on ``http://127.0.0.1:port/``; ``with VoilaServer(path) as server: server.url``."""

    def __init__(self, notebook: str | Path, port: int | None = None, startup_timeout: float = 120.0,
                 log_path: str | Path | None = None, max_message_mb: int = WEBSOCKET_MAX_MESSAGE_MB) -> None:
        self.notebook, self.port = Path(notebook).resolve(), port or free_port()
        self.max_message_mb = max_message_mb
        self.url = f"http://127.0.0.1:{self.port}/"
        self.startup_timeout = startup_timeout
        self.log_path = Path(log_path) if log_path else self.notebook.with_suffix(".voila.log")
        self.process: subprocess.Popen | None = None

    def start(self) -> "VoilaServer":
        """Start Voila and wait until its page answers; a clear error with the log's tail if it does not."""
        settings = {"websocket_max_message_size": self.max_message_mb * 2 ** 20}  # JSON: traitlets keeps it an int
        command = [sys.executable, "-m", "voila", str(self.notebook), f"--port={self.port}", "--no-browser",
                   "--Voila.ip=127.0.0.1", "--show_tracebacks=True", f"--Voila.tornado_settings={json.dumps(settings)}"]
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT,
                                        cwd=self.notebook.parent, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"voila exited with code {self.process.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "voila/static/", timeout=5):
                    return self
            except urllib.error.HTTPError:  # any HTTP answer means the server is up (the page itself runs a kernel)
                return self
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"voila did not answer on {self.url} within {self.startup_timeout:.0f} s: {self.log_tail()}")

    def log_tail(self, characters: int = 3000) -> str:
        """The end of Voila's log (server and kernel messages)."""
        return self.log_path.read_text(errors="replace")[-characters:] if self.log_path.is_file() else ""

    def stop(self) -> None:
        """Stop Voila (and its kernels)."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if getattr(self, "_log", None):
            self._log.close()

    def __enter__(self) -> "VoilaServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def _parse_assignment(text: str) -> tuple[str, object]:
    name, _, value = text.partition("=")
    if value in ("True", "False"):
        return name, value == "True"
    for convert in (int, float):
        try:
            return name, convert(value)
        except ValueError:
            pass
    return name, value


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: serve a notebook's page (``page_notebook``, with ``--set NAME=VALUE`` parameters) until
    interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebook")
    parser.add_argument("--port", type=int, default=8866)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a notebook parameter")
    arguments = parser.parse_args(argv)
    notebook = page_notebook(arguments.notebook, dict(_parse_assignment(item) for item in arguments.set))
    with VoilaServer(notebook, arguments.port) as server:
        print(f"serving {arguments.notebook} on {server.url} (Ctrl-C stops)", flush=True)
        try:
            server.process.wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
