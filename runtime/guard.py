"""What one worker lets in at once, and JSON bodies whose shape no request of the contract has.

ASGI middleware on the inference routes, inside the body limit (runtime/rest.py):

- At most ``MAX_INFLIGHT`` requests, holding at most ``MAX_INFLIGHT_BYTES`` of bodies,
  are served at once per worker; past either, 429 ``overloaded`` with ``Retry-After``
  at once, before the body is parsed. Without a cap, concurrent 8 MiB bodies are parsed
  side by side until the pod's memory limit kills it.
- A JSON body may hold at most ``MAX_JSON_VALUES`` containers and as many separators
  outside its strings. The contract's largest request (``--max_texts`` texts, V2's
  ``[n, 1]`` shape included) has about three per text; 8 MiB of ``{}`` is four million,
  which the JSON parser would turn into ~190 MB of Python objects before any field is
  looked at. Such a body is refused (413 ``payload_too_large``) before it is parsed,
  for the cost of one C-speed pass over its bytes.

The limits are per worker process; the pod's memory limit is what they protect
(docs/hostile-input.md derives them).
"""

from __future__ import annotations

import re

from contract.errors import ErrorType, ServiceError
from runtime.accesslog import INFERENCE_ROUTE
from runtime.rest import send_error

MAX_INFLIGHT = 64
MAX_INFLIGHT_BYTES = 64 * 2**20
MAX_JSON_VALUES = 32_768  # 1,000 texts need ~3,000 (V2 [n, 1]: a list and a comma each); 10,000 still hear too_many_texts
# A JSON string, escapes included, in the unrolled form: linear, no backtracking.
JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
RETRY_AFTER = {"retry-after": "1"}


def json_values(body: bytes) -> int:
    """Containers plus separators outside strings: an upper bound on the values a parser would build."""
    if len(body) <= MAX_JSON_VALUES:  # each is one byte: a body this short holds no more (no pass over it)
        return len(body)
    structure = JSON_STRING.sub(b"", body)
    return max(structure.count(b"{") + structure.count(b"["), structure.count(b",") + structure.count(b":"))


async def _read(receive) -> bytes | None:
    chunks, more = [], True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


class RequestGuard:
    def __init__(self, app):
        self.app = app
        self.inflight = 0
        self.inflight_bytes = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or not INFERENCE_ROUTE.match(scope["path"]):
            return await self.app(scope, receive, send)
        if not self.has_room():
            return await self._overloaded(scope, receive, send, f"{self.inflight} requests are in progress")
        self.inflight += 1
        held = 0
        try:
            try:
                body = await _read(receive)
            except ServiceError as error:  # the body limit (outside this layer) stops a body that is too large
                return await send_error(scope, receive, send, error)
            if body is None:  # the client went
                return
            if self.inflight_bytes + len(body) > MAX_INFLIGHT_BYTES:
                return await self._overloaded(scope, receive, send, f"{self.inflight_bytes} bytes of requests are in "
                                              "progress")
            held = len(body)
            self.inflight_bytes += held
            if (values := json_values(body)) > MAX_JSON_VALUES:
                return await send_error(scope, receive, send, ServiceError(
                    ErrorType.PAYLOAD_TOO_LARGE,
                    f"The body holds more than {values} JSON values outside its strings; a "
                    f"request needs at most {MAX_JSON_VALUES}. Send texts, and only the documented parameters."))
            sent = False

            async def replay():
                nonlocal sent
                if sent:
                    return await receive()  # the disconnect, when the client goes
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}

            await self.app(scope, replay, send)
        finally:
            self.inflight -= 1
            self.inflight_bytes -= held

    def has_room(self) -> bool:
        """Whether one more request may start now (its body not read yet)."""
        return self.inflight < MAX_INFLIGHT

    def admits(self, body: bytes) -> bool:
        """Whether a request with this whole body passes every check of ``__call__`` now: a layer that
        answers below ASGI (transformer/fasthttp.py) asks, and hands on to this one what it does not admit."""
        return (self.has_room() and self.inflight_bytes + len(body) <= MAX_INFLIGHT_BYTES
                and json_values(body) <= MAX_JSON_VALUES)

    async def _overloaded(self, scope, receive, send, what: str) -> None:
        await send_error(scope, receive, send, ServiceError(
            ErrorType.OVERLOADED,
            f"{what} on this worker (limits {MAX_INFLIGHT} requests, {MAX_INFLIGHT_BYTES} bytes); "
            "retry with backoff."), headers=RETRY_AFTER)
