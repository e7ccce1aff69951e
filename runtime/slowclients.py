"""A deadline on reading each request, and a cap on its header bytes: slow clients cannot hold a worker.

uvicorn bounds the idle time between requests (``timeout_keep_alive``) but not the time
a request takes to arrive: a client that sends a partial request line or headers, or a
body, a byte at a time, keeps its connection (and, once its headers are in, a place
under runtime/guard.py's in-flight cap) for as long as it likes (slow-loris). With
httptools, uvicorn's default parser, nothing bounds the header bytes either (h11 has
``h11_max_incomplete_event_size``; httptools' llhttp has no limit and uvicorn keeps
every header in a list).

``protocol_class()`` is uvicorn's own HTTP protocol (httptools when installed, else
h11, as uvicorn's ``auto`` picks) with two checks, both made in ``data_received``, where
both implementations parse:

- a request's first byte (or a new connection) starts a clock of ``read_timeout_s``
  seconds (uvicorn's ``Config.read_timeout_s``, set by runtime/kserve/rest_server.py);
  when the whole request, headers and body, has been read the clock stops. At the
  deadline the connection is closed: the application, if it was reading the body,
  sees ``http.disconnect``. The time the application takes to answer is not counted
  (the services' own deadlines bound it), nor is the idle time between requests
  (``timeout_keep_alive``'s).
- more than ``MAX_HEADER_BYTES`` before the headers are complete is a 431, and the
  connection is closed.

tests/integration/test_slow_clients.py sends both to real servers.
"""

from __future__ import annotations

import json
import logging

from uvicorn.protocols.http.h11_impl import H11Protocol

from contract.errors import ERRORS, ErrorType

logger = logging.getLogger(__name__)

# Envoy's default limit on request headers is 60 KiB (max_request_headers_kb); h11's own is 16 KiB.
MAX_HEADER_BYTES = 64 * 1024
DEFAULT_READ_TIMEOUT_S = 30.0
_BODY = json.dumps({"error": f"The request line and headers exceed {MAX_HEADER_BYTES} bytes.",
                    "error_type": ErrorType.HEADERS_TOO_LARGE.value}, separators=(",", ":")).encode()
TOO_LARGE = (f"HTTP/1.1 {ERRORS[ErrorType.HEADERS_TOO_LARGE].http_status} Request Header Fields Too Large\r\n"
             f"content-type: application/json\r\nconnection: close\r\ncontent-length: {len(_BODY)}\r\n\r\n"
             ).encode() + _BODY


class ReadDeadline:
    """The mixin: put before uvicorn's protocol class (see the module docstring)."""

    _deadline = None  # the TimerHandle of the request being read, if any
    _header_bytes = 0

    def _reading(self) -> bool:
        """No request in progress: the bytes arriving are a new request's line and headers."""
        return self.cycle is None or self.cycle.response_complete

    def _arm(self) -> None:
        self._header_bytes = 0
        self._deadline = self.loop.call_later(getattr(self.config, "read_timeout_s", DEFAULT_READ_TIMEOUT_S),
                                              self._read_timed_out)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm()  # a connection that never sends a byte is held no longer than a slow request

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._deadline is None and self._reading():
            self._arm()  # the first bytes of the next request on a kept-alive connection
        super().data_received(data)
        if self._reading():  # still in the line and headers: their bytes so far
            self._header_bytes += len(data)
            if self._header_bytes > MAX_HEADER_BYTES and not self.transport.is_closing():
                self._disarm()
                self.transport.write(TOO_LARGE)
                self.transport.close()
        elif not self.cycle.more_body:  # the whole request is in: the application's time is not ours to bound
            self._disarm()

    def _read_timed_out(self) -> None:
        self._deadline = None
        if self.transport.is_closing() or (not self._reading() and not self.cycle.more_body):
            return
        logger.debug("closing a connection whose request did not arrive within %s s", self.config.read_timeout_s)
        self.transport.close()


class H11ReadDeadline(ReadDeadline, H11Protocol):
    pass


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # uvicorn's auto then picks h11 too
    HttpToolsReadDeadline = None
else:
    class HttpToolsReadDeadline(ReadDeadline, HttpToolsProtocol):
        pass


def protocol_class() -> type:
    """uvicorn's ``auto`` choice, with the checks."""
    return HttpToolsReadDeadline or H11ReadDeadline
