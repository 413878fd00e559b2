"""Benchmark: latency and throughput of the HTTP API (``python -m nbhelpers.serve``) next to the command line's
images/second, on the same real photos in one run.

    python benchmarks/bench_api.py --photos ../shared/data/fairface-dev --requests 64 --concurrency 4 8

The command line's figure is ``Predictor.predict_paths`` in this process (what ``python -m nbhelpers.predict``
runs per photo, batched, without process start-up). Then the server is started on loopback in a subprocess,
warmed up, and sent bursts of ``--requests`` uploads (one photo each) with at most ``--concurrency`` in flight
(httpx.AsyncClient); per burst it prints p50/p95 latency and images/second. The checkpoint is ``--checkpoint``,
else the newest run of ``--checkpoint-dir``'s ``runs.json``, else an untrained ``efficientnet_lite0`` at its
registry input size (96 px; speed does not depend on the weights), which the output says.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import httpx
import torch

from nbhelpers.models import create_model
from nbhelpers.predict.predictor import Predictor
from nbhelpers.predict.web_page import free_port
from nbhelpers.training.checkpoint import save_checkpoint
from nbhelpers.training.runs import find_run, read_index

ROOT = Path(__file__).resolve().parents[1]
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def choose_checkpoint(arguments: argparse.Namespace, work: Path) -> tuple[Path, str]:
    """(checkpoint, how it was chosen): the given one, the newest recorded run, or an untrained model."""
    if arguments.checkpoint:
        return Path(arguments.checkpoint), "given"
    runs = read_index(arguments.checkpoint_dir)
    if runs:
        run = find_run(arguments.checkpoint_dir, run_id=runs[-1]["run_id"])
        return Path(run["checkpoint"]), f"newest run {run['run_id']} ({run['model']})"
    model = create_model("efficientnet_lite0")  # random weights: no download, same speed
    spec = model.spec.replace(mean=IMAGENET_MEAN, std=IMAGENET_STD)  # what a finetune run records
    path = save_checkpoint(work / "untrained.pt", {"model_state": model.state_dict(), "metadata": spec.to_dict()})
    return path, f"untrained efficientnet_lite0 at {model.spec.input_size} px (no run in {arguments.checkpoint_dir})"


def in_process_rates(checkpoint: Path, paths: list[Path], device: str | None) -> tuple[float, float]:
    """Images/second of ``Predictor.predict_paths`` over ``paths`` (batched, as the command line runs), and of
    ``predict_images`` called once per photo's bytes (what one API request runs), after a warm-up."""
    predictor = Predictor(checkpoint, device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        list(predictor.predict_paths(paths[:4], progress=False))
        start = time.perf_counter()
        results = list(predictor.predict_paths(paths, progress=False))
        batched = len(paths) / (time.perf_counter() - start)
        start = time.perf_counter()
        for path in paths:
            list(predictor.predict_images([(path.name, path.read_bytes())]))
        single = len(paths) / (time.perf_counter() - start)
    assert all(result.ok for result in results), [result.error for result in results if not result.ok]
    return batched, single


def start_server(checkpoint: Path, device: str | None, threads: int, log: Path) -> tuple[subprocess.Popen, str]:
    """``python -m nbhelpers.serve`` on a free loopback port with ``threads`` torch threads, once ``/health``
    answers."""
    port = free_port()
    command = [sys.executable, "-m", "nbhelpers.serve", "--checkpoint", str(checkpoint), "--port", str(port),
               "--log-level", "warning"] + (["--device", device] if device else [])
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    process = subprocess.Popen(command, cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=environment)
    url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"the server did not start: {log.read_text()[-2000:]}")


async def burst(url: str, photos: list[tuple[str, bytes]], concurrency: int,
                explain: str | None) -> tuple[list[float], float]:
    """(latency in seconds of each upload, seconds of the whole burst), with at most ``concurrency`` in flight."""
    gate = asyncio.Semaphore(concurrency)
    params = {"explain": explain} if explain else {}

    async def one(client: httpx.AsyncClient, name: str, data: bytes) -> float:
        async with gate:
            start = time.perf_counter()
            response = await client.post(f"{url}/predict", params=params, files={"file": (name, data)})
            if response.status_code != 200:
                raise RuntimeError(f"{name}: HTTP {response.status_code}: {response.text[:300]}")
            return time.perf_counter() - start

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=300, limits=limits) as client:
        start = time.perf_counter()
        latencies = list(await asyncio.gather(*(one(client, name, data) for name, data in photos)))
        return latencies, time.perf_counter() - start


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` quantile of ``values`` (linear interpolation)."""
    return statistics.quantiles(values, n=100, method="inclusive")[round(fraction * 100) - 1]


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", default=str(ROOT.parent / "shared" / "data" / "fairface-dev"))
    parser.add_argument("--checkpoint", default=None, help="default: newest run in --checkpoint-dir")
    parser.add_argument("--checkpoint-dir", default=str(ROOT / "data" / "checkpoints"))
    parser.add_argument("--requests", type=int, default=64, help="uploads per burst (distinct photos)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[4, 8], help="requests in flight")
    parser.add_argument("--explain", default=None, help="also time bursts with ?explain=METHOD")
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="torch (OpenMP) threads, the same in this process and in the server (default: %(default)s)")
    return parser.parse_args()


def main() -> None:
    arguments = parse_arguments()
    paths = sorted(path for path in Path(arguments.photos).glob("*.jpg"))[: arguments.requests]
    if not paths:
        raise SystemExit(f"{arguments.photos}: no .jpg photos to send")
    photos = [(path.name, path.read_bytes()) for path in paths]
    with tempfile.TemporaryDirectory() as work:
        checkpoint, chosen = choose_checkpoint(arguments, Path(work))
        torch.set_num_threads(arguments.threads)
        batched, single = in_process_rates(checkpoint, paths, arguments.device)
        process, url = start_server(checkpoint, arguments.device, arguments.threads, Path(work) / "server.log")
        try:
            asyncio.run(burst(url, photos[:4], 1, None))  # warm-up
            rows = [(concurrency, explain, asyncio.run(burst(url, photos, concurrency, explain)))
                    for explain in dict.fromkeys([None, arguments.explain]) for concurrency in arguments.concurrency]
        finally:
            process.terminate()
            process.wait(30)
    print(f"{len(photos)} photos from {arguments.photos}; checkpoint: {chosen}; torch threads {arguments.threads}")
    print(f"in process: command line path (predict_paths, batched) {batched:.1f} img/s; "
          f"one photo per predict_images call {single:.1f} img/s")
    print("HTTP API (python -m nbhelpers.serve on loopback, one photo per request):")
    print(f"{'concurrency':>11} {'explain':>8} {'p50 ms':>8} {'p95 ms':>8} {'img/s':>7}")
    for concurrency, explain, (latencies, seconds) in rows:
        rate = len(latencies) / seconds
        print(f"{concurrency:>11} {explain or '-':>8} {1000 * statistics.median(latencies):8.0f} "
              f"{1000 * percentile(latencies, 0.95):8.0f} {rate:7.1f}")


if __name__ == "__main__":
    main()
