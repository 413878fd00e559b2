"""The upload size limit of the HTTP API, enforced while the request body arrives (a plain ASGI middleware).

A request whose ``Content-Length`` declares more than the limit is answered 413 before any of its body is
read; a body without a length (chunked transfer) is counted as it is received, and the request is answered
413 as soon as the count passes the limit, before the rest is parsed or stored. Either way the answer is the
API's JSON error, ``{"error": "request: ..."}``. The ASGI protocol is the specification
(https://asgi.readthedocs.io/en/latest/specs/www.html); no web framework is imported here.
"""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable, MutableMapping

__all__ = ["UploadLimit", "BodyTooLarge", "send_json_error"]

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class BodyTooLarge(Exception):
    """Raised inside the application's ``receive`` when the body passes the limit (caught by ``UploadLimit``)."""


async def send_json_error(send: Send, status: int, message: str) -> None:
    """Send a complete ``{"error": message}`` JSON response with HTTP ``status``."""
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _declared_length(scope: Message) -> int | None:
    """The request's Content-Length as a number of bytes; None when absent or not a number."""
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None


class UploadLimit:
    """ASGI middleware: answer 413 to any HTTP request whose body is larger than ``max_bytes`` (> 0)."""

    def __init__(self, app: Callable[..., Awaitable[None]], max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, not {max_bytes}")
        self.app, self.max_bytes = app, int(max_bytes)

    def problem(self, declared: int | None = None) -> str:
        """The error message for a body that declared ``declared`` bytes, or (None) was counted past the limit."""
        body = "body" if declared is None else f"body of {declared} bytes"
        return f"request: {body} is over the upload limit of {self.max_bytes} bytes ({self.max_bytes / 2 ** 20:g} MiB)"

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None and declared > self.max_bytes:
            await send_json_error(send, 413, self.problem(declared))
            return
        state = {"received": 0, "over": False}

        async def counting_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > self.max_bytes:
                    state["over"] = True
                    raise BodyTooLarge(self.problem())
            return message

        async def guarded_send(message: Message) -> None:
            if not state["over"]:  # once over the limit, whatever the application answers is replaced
                await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:  # noqa: BLE001 - a framework may wrap BodyTooLarge in its own error; over the limit,
            if not state["over"]:  # any failure is the limit's doing and gets the 413 below
                raise
        if state["over"]:
            await send_json_error(send, 413, self.problem())
