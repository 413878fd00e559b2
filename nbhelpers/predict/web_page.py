"""Serve a notebook as a web page with Voila, with papermill-style parameters.

    python -m nbhelpers.predict.web_page notebooks/08_predict.ipynb --port 8866 --set REPORTS_DIR=/abs/reports

Voila runs a notebook as it is written; ``parameterized_copy`` writes a copy with a papermill
``injected-parameters`` cell (the same mechanism as the batch runs), so the page can run on another
profile or on other report and data folders. ``VoilaServer`` starts Voila on loopback, waits until it
answers and stops it (a context manager), for tests and scripts.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Sequence

__all__ = ["parameterized_copy", "free_port", "VoilaServer", "main"]


def parameterized_copy(notebook: str | Path, parameters: dict[str, object], destination: str | Path) -> Path:
    """Write ``notebook`` with ``parameters`` injected after its ``parameters`` cell to ``destination``."""
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
    nbformat.write(parameterize_notebook(source, dict(parameters)), str(destination))
    return destination


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class VoilaServer:
    """Voila serving one notebook on ``http://127.0.0.1:port/``; ``with VoilaServer(path) as server: server.url``."""

    def __init__(self, notebook: str | Path, port: int | None = None, startup_timeout: float = 120.0,
                 log_path: str | Path | None = None) -> None:
        self.notebook, self.port = Path(notebook).resolve(), port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.startup_timeout = startup_timeout
        self.log_path = Path(log_path) if log_path else self.notebook.with_suffix(".voila.log")
        self.process: subprocess.Popen | None = None

    def start(self) -> "VoilaServer":
        """Start Voila and wait until its page answers; a clear error with the log's tail if it does not."""
        command = [sys.executable, "-m", "voila", str(self.notebook), f"--port={self.port}", "--no-browser",
                   "--Voila.ip=127.0.0.1", "--show_tracebacks=True"]
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
    for convert in (int, float):
        try:
            return name, convert(value)
        except ValueError:
            pass
    return name, value


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: serve a notebook (with ``--set NAME=VALUE`` parameters) until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebook")
    parser.add_argument("--port", type=int, default=8866)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a notebook parameter")
    arguments = parser.parse_args(argv)
    notebook = Path(arguments.notebook)
    if arguments.set:
        parameters = dict(_parse_assignment(item) for item in arguments.set)
        notebook = parameterized_copy(notebook, parameters, notebook.with_name(f".{notebook.stem}.served.ipynb"))
    with VoilaServer(notebook, arguments.port) as server:
        print(f"serving {arguments.notebook} on {server.url} (Ctrl-C stops)", flush=True)
        try:
            server.process.wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
