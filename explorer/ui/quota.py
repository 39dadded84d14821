"""A disk quota for Gradio's upload route: Gradio checks each file's size (``max_file_size``) but not how many files
one visitor sends, and keeps them for an hour, so without this anyone could fill the server's disk.

An ASGI middleware (passed to ``demo.launch(app_kwargs={"middleware": [...]})``) refuses an upload with 413 when
the uploads accepted in the last ``window_s`` seconds (as long as Gradio keeps them) would pass ``max_total_bytes``,
or one client's would pass ``per_client_bytes``. Uploads must declare their size (Content-Length), as browsers and
gradio_client do. A client is the address a proxy (a Hugging Face Space's) reports when ``trust_forwarded``, else
the peer address.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any, Callable

from .fairness import REFUSAL_DELAY_S, SlidingWindow, forwarded_client

log = logging.getLogger(__name__)

MAX_TOTAL_BYTES = 512 * 2**20     # everything in Gradio's upload folder
PER_CLIENT_BYTES = 96 * 2**20     # what one client may upload per window (one and a half of the largest generators)
WINDOW_S = 4500.0                 # Gradio keeps uploads up to 75 min (delete_cache=(900, 3600) in explorer.ui.app)
UPLOAD_PATHS = ("/upload", "/process_recording")


class UploadQuota:
    """ASGI middleware around an app (Gradio's FastAPI app)."""

    def __init__(self, app: Any, *, max_total_bytes: int = MAX_TOTAL_BYTES, per_client_bytes: int = PER_CLIENT_BYTES,
                 window_s: float = WINDOW_S, trust_forwarded: bool = False, clock: Callable[[], float] = time.monotonic,
                 refusal_delay_s: float = REFUSAL_DELAY_S):
        self.app = app
        self.refusal_delay_s = refusal_delay_s  # as the queue's refusals: a flooding client slows to one a second
        self.trust_forwarded = trust_forwarded
        self.max_total_bytes = max_total_bytes
        self.per_client_bytes = per_client_bytes
        self.window_s = window_s
        self.clock = clock
        self._sent = SlidingWindow(window_s)  # client -> (time, bytes) of accepted uploads
        self._lock = threading.Lock()

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or not scope.get("path", "").endswith(UPLOAD_PATHS):
            await self.app(scope, receive, send)
            return
        refusal = self.check(scope)
        if refusal:
            log.warning("upload refused (%s): %s", self.client(scope), refusal)
            await asyncio.sleep(self.refusal_delay_s)
            await send({"type": "http.response.start", "status": 413 if "declare" not in refusal else 411,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
            await send({"type": "http.response.body", "body": refusal.encode()})
            return
        await self.app(scope, receive, send)

    def client(self, scope: dict) -> str:
        """The client as a trusted proxy reports it (the last X-Forwarded-For entry), else the peer address."""
        headers = dict(scope.get("headers") or [])
        forwarded = headers.get(b"x-forwarded-for", b"").decode("latin-1") if self.trust_forwarded else ""
        return forwarded_client(forwarded) or (scope.get("client") or ("unknown",))[0]

    def check(self, scope: dict) -> str:
        """'' when the upload may go ahead (and is then counted), else why not."""
        headers = dict(scope.get("headers") or [])
        try:
            size = int(headers[b"content-length"])
        except (KeyError, ValueError):
            return "uploads must declare their size (Content-Length)"
        client, now = self.client(scope), self.clock()
        with self._lock:
            self._sent.forget(now)
            if self._sent.total(client) + size > self.per_client_bytes:
                return (f"upload quota reached: at most {self.per_client_bytes // 2**20} MB per client per "
                        f"{self.window_s / 60:g} minutes; try again later")
            if self._sent.grand_total() + size > self.max_total_bytes:
                return "the server's upload space is full; try again later"
            self._sent.add(client, now, size)
        return ""
