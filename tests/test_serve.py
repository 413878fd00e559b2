"""The HTTP API on a real uvicorn server on loopback, called with httpx: health, the command line's JSON for a
photo, explanations as PNG, every kind of bad request (4xx JSON errors, 413 while the body arrives) and a good
request after them; the ``python -m nbhelpers.serve`` command in a subprocess (with face detection)."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import re
import socket
import subprocess
import sys
import threading
import time

import pytest
import numpy as np
from PIL import Image

httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn", reason="the HTTP API needs the api extra (uvicorn)")
pytest.importorskip("fastapi", reason="the HTTP API needs the api extra (fastapi)")

from nbhelpers.predict.cli import main as predict_main  # noqa: E402
from nbhelpers.predict.predictor import Predictor  # noqa: E402
from nbhelpers.predict.results import NO_FACE  # noqa: E402
from nbhelpers.predict.web_page import free_port  # noqa: E402
from nbhelpers.serve.app import create_app  # noqa: E402
from nbhelpers.serve.cli import main as serve_main, supported_explainers  # noqa: E402
from tests.conftest import ROOT, face_like, smooth_photo, tiny_checkpoint_file  # noqa: E402

LIMIT = 256 * 1024  # bytes: the upload limit of the test server


def encoded(image: Image.Image, fmt: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint_file(tmp_path_factory.mktemp("run") / "tiny.pt")


@contextlib.contextmanager
def running(app):
    """uvicorn serving ``app`` in a thread on a free loopback port; yields the base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def predictor(checkpoint):
    return Predictor(checkpoint, device="cpu", detect=False)


@pytest.fixture(scope="module")
def client(predictor):
    methods = supported_explainers(predictor.trained.model)
    with running(create_app(predictor, LIMIT, methods)) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client


def rounded(data):
    """``data`` with every float rounded to 6 places (the server's and the command line's floats may differ
    in the last bits)."""
    if isinstance(data, float):
        return round(data, 6)
    if isinstance(data, dict):
        return {key: rounded(value) for key, value in data.items()}
    return [rounded(value) for value in data] if isinstance(data, list) else data


def test_health_describes_the_model(client, predictor):
    response = client.get("/health")
    assert response.status_code == 200
    health = response.json()
    assert health["status"] == "ok" and health["model"] == "simple_cnn" and health["input_size"] == 32
    assert health["classes"] == ["female", "male"] and health["uncertain_below"] == predictor.uncertain_below
    assert "gradcam" in health["explain_methods"] and "bcos" not in health["explain_methods"]
    assert health["max_upload_bytes"] == LIMIT and health["detect"] is False


def test_predict_returns_what_the_command_line_prints(client, checkpoint, tmp_path, capsys):
    path = tmp_path / "face.jpg"
    path.write_bytes(encoded(face_like(1, 64)))
    arguments = ["--checkpoint", str(checkpoint), str(path), "--no-detect", "--no-progress", "--device", "cpu"]
    assert predict_main(arguments) == 0
    printed = json.loads(capsys.readouterr().out.strip())
    response = client.post("/predict", files={"file": (str(path), path.read_bytes(), "image/jpeg")})
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert rounded(response.json()) == rounded(printed)
    assert printed["faces"][0]["detector"] == "centre" and printed["image_size"] == [64, 64]


def test_explanation_is_a_png_of_the_face(client):
    response = client.post("/predict", params={"explain": "gradcam"},
                           files={"file": ("face.png", encoded(face_like(2, 80), "PNG"), "image/png")})
    assert response.status_code == 200
    [face] = response.json()["faces"]
    explanation = face["explanation"]
    assert explanation["method"] == "gradcam" and explanation["png"].startswith("data:image/png;base64,")
    overlay = Image.open(io.BytesIO(base64.b64decode(explanation["png"].split(",", 1)[1])))
    assert overlay.format == "PNG" and overlay.size == (200, 200) and overlay.mode == "RGB"
    plain = client.post("/predict", files={"file": ("face.png", encoded(face_like(2, 80), "PNG"), "image/png")})
    assert "explanation" not in plain.json()["faces"][0]
    assert plain.json()["faces"][0]["probabilities"] == pytest.approx(face["probabilities"], abs=1e-5)


def test_bcos_explanation_is_the_colour_image_the_page_and_the_command_line_draw(tmp_path):
    from nbhelpers.predict.explanation_images import explanation_image
    from tests.test_predict_explain import tiny_bcos_checkpoint_file

    bcos = Predictor(tiny_bcos_checkpoint_file(tmp_path / "bcos.pt"), device="cpu", detect=False)
    data = encoded(face_like(2, 80), "PNG")
    with running(create_app(bcos, LIMIT, supported_explainers(bcos.trained.model))) as url:
        response = httpx.post(f"{url}/predict", params={"explain": "bcos"}, files={"file": ("face.png", data)}, timeout=60)
    assert response.status_code == 200
    png = response.json()["faces"][0]["explanation"]["png"]
    served = np.asarray(Image.open(io.BytesIO(base64.b64decode(png.split(",", 1)[1]))))
    [result] = bcos.predict_images([("face.png", data)], explain="bcos", keep_chips=True)
    assert result.faces[0].explanation_image is not None  # the colour explanation of W(x), not a heat map
    np.testing.assert_array_equal(served, explanation_image(result.faces[0]))


def chunked(total: int, boundary: str = "limit-test"):
    """A multipart body of about ``total`` bytes, sent in 64 KiB chunks without a Content-Length."""
    yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.jpg\"\r\n"
           "Content-Type: image/jpeg\r\n\r\n").encode()
    for _ in range(total // 65536):
        yield b"\xff" * 65536
    yield f"\r\n--{boundary}--\r\n".encode()


def bad_requests() -> list[tuple[str, dict, int, str]]:
    """(what, httpx.post keyword arguments, status, pattern the error must match)."""
    bomb = io.BytesIO()
    Image.new("1", (20000, 20000)).save(bomb, format="PNG")
    return [
        ("text", {"files": {"file": ("notes.txt", b"not an image at all\n", "text/plain")}}, 422, "^notes.txt: "),
        ("empty", {"files": {"file": ("empty.jpg", b"", "image/jpeg")}}, 422, "empty.jpg: empty file"),
        ("truncated", {"files": {"file": ("cut.jpg", encoded(face_like(3, 64))[:200], "image/jpeg")}}, 422, "cut.jpg: "),
        ("bomb", {"files": {"file": ("bomb.png", bomb.getvalue(), "image/png")}}, 422, "bomb.png: decompression bomb"),
        ("tiny", {"files": {"file": ("tiny.png", encoded(face_like(4, 8), "PNG"), "image/png")}}, 422, "too small"),
        ("no file field", {"data": {"photo": "x"}}, 422, "multipart/form-data field 'file'"),
        ("no body", {}, 422, "field 'file'"),
        ("unknown method", {"params": {"explain": "nonsense"}, "files": {"file": ("a.jpg", b"x", "image/jpeg")}},
         422, "explain: unknown method 'nonsense'"),
        ("declared too large", {"files": {"file": ("big.jpg", b"\xff" * (LIMIT + 1), "image/jpeg")}}, 413,
         rf"^request: body of \d+ bytes is over the upload limit of {LIMIT} bytes \(0.25 MiB\)$"),
        ("streamed too large", {"content": chunked(4 * LIMIT),
                                "headers": {"content-type": "multipart/form-data; boundary=limit-test"}}, 413,
         rf"^request: body is over the upload limit of {LIMIT} bytes"),
    ]


def test_bad_requests_get_json_errors_and_the_server_keeps_serving(client):
    for what, arguments, status, pattern in bad_requests():
        response = client.post("/predict", **arguments)
        assert response.status_code == status, f"{what}: {response.status_code} {response.text[:300]}"
        assert re.search(pattern, response.json()["error"]), f"{what}: {response.json()}"
    missing = client.get("/nothing-here")
    assert missing.status_code == 404 and missing.json() == {"error": "request: Not Found (GET /nothing-here)"}
    assert client.get("/predict").status_code == 405 and "error" in client.get("/predict").json()
    good = client.post("/predict", files={"file": ("again.jpg", encoded(face_like(5, 64)), "image/jpeg")})
    assert good.status_code == 200 and good.json()["face_detected"] is True


def test_declared_length_over_the_limit_is_refused_before_the_body(client):
    """A request declaring 10 GB is answered 413 at once, though not one byte of its body was sent."""
    host, port = client.base_url.host, client.base_url.port
    with socket.create_connection((host, port), timeout=10) as connection:
        connection.sendall(f"POST /predict HTTP/1.1\r\nHost: {host}\r\nContent-Length: {10 ** 10}\r\n"
                           "Content-Type: multipart/form-data; boundary=x\r\n\r\n".encode())
        answer = b""
        while b"}" not in answer:
            chunk = connection.recv(4096)
            assert chunk, f"connection closed after {answer!r}"
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413 ") and b'"request: body of 10000000000 bytes is over' in answer


def test_failure_inside_the_model_is_a_500_json_error(client, predictor, monkeypatch):
    def broken(*arguments, **keywords):
        raise RuntimeError("out of memory on the accelerator")

    monkeypatch.setattr(predictor, "predict_images", broken)
    response = client.post("/predict", files={"file": ("a.jpg", encoded(face_like(6, 64)), "image/jpeg")})
    assert response.status_code == 500 and response.json()["error"] == (
        "a.jpg: prediction failed (RuntimeError: out of memory on the accelerator); the server goes on serving")
    monkeypatch.undo()
    assert client.post("/predict", files={"file": ("b.jpg", encoded(face_like(6, 64)), "image/jpeg")}).status_code == 200


def test_openapi_documents_the_endpoints(client):
    schema = client.get("/openapi.json").json()
    assert schema["info"]["title"] == "Face-gender classifier" and "uncertain" in schema["info"]["description"]
    assert {"/predict", "/health"} <= set(schema["paths"]) and schema["paths"]["/predict"]["post"]["summary"]
    [explain] = schema["paths"]["/predict"]["post"]["parameters"]
    assert explain["name"] == "explain" and "gradcam" in explain["schema"]["enum"]
    assert client.get("/docs").status_code == 200


def test_unusable_checkpoint_exit_code(tmp_path, capsys):
    (tmp_path / "model.pt").write_bytes(b"not a checkpoint")
    assert serve_main(["--checkpoint", str(tmp_path / "model.pt")]) == 2
    assert "cannot use checkpoint" in capsys.readouterr().err


def test_command_serves_with_face_detection(checkpoint, tmp_path):
    """``python -m nbhelpers.serve`` on loopback: a photo without a face is a 200 answer without a gender."""
    port = free_port()
    log = open(tmp_path / "serve.log", "wb")
    process = subprocess.Popen([sys.executable, "-m", "nbhelpers.serve", "--checkpoint", str(checkpoint),
                                "--port", str(port), "--device", "cpu", "--log-level", "warning"],
                               cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 120
        while True:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()[-2000:]
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            assert time.monotonic() < deadline, "the server did not answer within 120 s"
            time.sleep(0.2)
        assert httpx.get(f"{url}/health").json()["detect"] is True
        response = httpx.post(f"{url}/predict", files={"file": ("scene.png", encoded(smooth_photo(), "PNG"))},
                              timeout=60)
        assert response.status_code == 200
        assert response.json() == {"path": "scene.png", "image_size": [120, 90], "face_detected": False,
                                   "faces": [], "notes": [NO_FACE]}
    finally:
        process.terminate()
        process.wait(30)
        log.close()
