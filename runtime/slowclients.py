"""A deadline on reading each request, and a cap on its header bytes: slow clients cannot hold a worker.

uvicorn bounds the idle time between requests (``timeout_keep_alive``) but not the time
a request takes to arrive: a client that sends a partial request line or headers, or a
body, a byte at a time, keeps its connection (and, once its headers are in, a place
under runtime/guard.py's in-flight cap) for as long as it likes (slow-loris). With
httptools, uvicorn's default parser, nothing bounds the header bytes either (h11 has
``h11_max_incomplete_event_size``; httptools' llhttp has no limit and uvicorn keeps
every header in a list).

``protocol_class()`` is uvicorn's own HTTP protocol (httptools when installed, else
h11, as uvicorn's ``auto`` picks) with two checks, following httptools' callbacks (a
message's begin, its headers' end, its end) or, with h11, the request's state after each
parse:

- a request's first byte (or a new connection) starts a clock of ``read_timeout_s``
  seconds (uvicorn's ``Config.read_timeout_s``, set by runtime/kserve/rest_server.py);
  when the whole request, headers and body, has been read the clock stops. At the
  deadline the connection is closed: the application, if it was reading the body,
  sees ``http.disconnect``. The time the application takes to answer is not counted
  (the services' own deadlines bound it), nor is the idle time between requests
  (``timeout_keep_alive``'s).
- more than ``MAX_HEADER_BYTES`` before the headers are complete is a 431, and the
  connection is closed (httptools; h11 has its own limit).

tests/integration/test_slow_clients.py sends both to real servers.
"""

from __future__ import annotations

import json
import logging

import h11
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
    """The deadline, common to both protocols: armed at the connection and at each request's first byte."""

    _deadline = None  # the TimerHandle of the request being read, if any

    def _arm(self) -> None:
        if self._deadline is None:
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

    def _read_timed_out(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            logger.debug("closing a connection whose request did not arrive within %s s", self.config.read_timeout_s)
            self.transport.close()


class H11ReadDeadline(ReadDeadline, H11Protocol):
    """h11 parses in ``data_received`` and has no per-message callbacks: the client's side of h11's state
    machine is read after each parse. Its headers are bounded by h11 itself (``h11_max_incomplete_event_size``)."""

    def _still_reading(self) -> bool:
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            return True
        return state is h11.IDLE and bool(self.conn.trailing_data[0])  # a next request's first bytes, parsed or not

    def data_received(self, data: bytes) -> None:
        self._arm()  # no-op while a request's clock runs; else these are a next request's first bytes
        super().data_received(data)
        if not self._still_reading():
            self._disarm()  # the whole request is in: the application's time is not ours to bound


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # uvicorn's auto then picks h11 too
    HttpToolsReadDeadline = None
else:
    class HttpToolsReadDeadline(ReadDeadline, HttpToolsProtocol):
        """httptools calls back at each message's begin, headers' end and end: the clock follows them."""

        _in_headers = False
        _header_bytes = 0

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()  # the first request's clock started with the connection
            self._in_headers, self._header_bytes = True, 0

        def on_headers_complete(self) -> None:
            self._in_headers = False
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._disarm()  # also for a request answered before its body had all arrived

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._in_headers:
                self._header_bytes += len(data)  # this read's bytes: an overestimate by at most one read
                if self._header_bytes > MAX_HEADER_BYTES and not self.transport.is_closing():
                    self._disarm()
                    self.transport.write(TOO_LARGE)
                    self.transport.close()


def protocol_class() -> type:
    """uvicorn's ``auto`` choice, with the checks."""
    return HttpToolsReadDeadline or H11ReadDeadline
