"""A compute budget per visitor, so that one client cannot take the image workers from everyone else.

Gradio's queue serves requests in arrival order: a client that keeps several of the most expensive requests waiting
(512-frame walks, 64-seed grids) makes every other visitor wait behind them. Each image request here is metered: a
visitor who has used more than ``seconds`` of generator time in the last ``window_s`` seconds is refused at once,
with the time to wait, until the window has moved on. Normal use stays far below the budget (one request costs
0.1-0.5 s). A call still running counts as at least what the visitor's calls have typically cost, and a call that
would take the visitor past its share is not started beside one still running, so a client cannot start several long
requests at once before the first has been charged (a page load's few short calls still go together). A visitor is
its Gradio session (a browser tab, one gradio_client.Client) and, behind a proxy such as a Hugging Face Space's
(``trust_forwarded``), also the client address the proxy reports (the last X-Forwarded-For entry, which the proxy
writes; the earlier ones come from the client). Without a proxy the header is the client's own words and is ignored.
"""
from __future__ import annotations

import functools
import inspect
import json
import math
import threading
import time
from collections import deque
from typing import Any, Callable

import gradio as gr

from dcgan.errors import DCGANError

SECONDS = 10.0    # generator time one visitor may use per window (a twelfth of two workers' time)
WINDOW_S = 60.0
TYPICAL_WEIGHT = 0.5   # how much the newest call moves a visitor's typical cost (an exponential average)


class OverBudget(DCGANError):
    """A visitor asked for more generator time than its share."""


def forwarded_client(forwarded: str) -> str:
    """The client address in an X-Forwarded-For header: its last entry, the one the nearest proxy wrote (a client
    can put anything in the earlier ones); '' for none."""
    return forwarded.split(",")[-1].strip() if forwarded else ""


def visitors(request: gr.Request | None, trust_forwarded: bool = False) -> list[str]:
    """The keys a request is counted under: its session, and (behind a proxy) the client address it reports."""
    if request is None:
        return []
    keys = [f"session:{request.session_hash}"] if getattr(request, "session_hash", None) else []
    headers = getattr(request, "headers", None) or {}
    address = forwarded_client(headers.get("x-forwarded-for", "") if trust_forwarded and hasattr(headers, "get") else "")
    return keys + ([f"address:{address}"] if address else [])


class SlidingWindow:
    """Amounts per key over the last ``window_s`` seconds (generator seconds, upload bytes), oldest first; keys with
    nothing left in the window are forgotten, so memory follows the recent visitors only. The caller holds a lock."""

    def __init__(self, window_s: float):
        self.window_s = window_s
        self._events: dict[str, deque[tuple[float, float]]] = {}  # key -> (time, amount)

    def forget(self, now: float) -> None:
        """Drop what left the window (and keys left empty)."""
        for key in list(self._events):
            events = self._events[key]
            while events and events[0][0] < now - self.window_s:
                events.popleft()
            if not events:
                del self._events[key]

    def add(self, key: str, now: float, amount: float) -> None:
        self._events.setdefault(key, deque()).append((now, amount))

    def total(self, key: str) -> float:
        return sum(amount for _, amount in self._events.get(key, ()))

    def grand_total(self) -> float:
        return sum(amount for events in self._events.values() for _, amount in events)

    def oldest(self, key: str) -> float | None:
        """When the key's oldest amount in the window was added (None if it has none)."""
        events = self._events.get(key)
        return events[0][0] if events else None

    def keys(self) -> list[str]:
        return list(self._events)


class VisitorBudget:
    """Thread-safe; ``metered(fn)`` wraps a Gradio handler so that each call is admitted, timed and charged."""

    def __init__(self, seconds: float = SECONDS, window_s: float = WINDOW_S, *, trust_forwarded: bool = False,
                 clock: Callable[[], float] = time.monotonic):
        self.seconds = seconds
        self.trust_forwarded = trust_forwarded
        self.window_s = window_s
        self.clock = clock
        self._spent = SlidingWindow(window_s)                      # key -> (end time, seconds) of finished calls
        self._running: dict[str, dict[int, float]] = {}           # key -> {call id: start time}
        self._typical: dict[str, tuple[float, float]] = {}        # key -> (typical seconds per call, when last charged)
        self._calls = 0
        self._lock = threading.Lock()

    def used(self, key: str, now: float) -> float:
        """Generator seconds ``key`` used in the window, counting each call still running as at least the key's
        typical cost (call with the lock held, after ``self._forget(now)``)."""
        typical = self._typical.get(key, (0.0, now))[0]
        return self._spent.total(key) + sum(max(now - start, typical) for start in self._running.get(key, {}).values())

    def _forget(self, now: float) -> None:
        """Drop what left the window; a typical cost is kept for ten windows after the key's last call, so that a
        visitor cannot wait for its window to empty and then start a burst as if new."""
        self._spent.forget(now)
        for key, (_, last) in list(self._typical.items()):
            if last < now - 10 * self.window_s and key not in self._running:
                del self._typical[key]

    def refusal(self, keys: list[str]) -> str:
        """Why a new call by ``keys`` is refused ('' when it is not)."""
        now = self.clock()
        with self._lock:
            return self._refusal(keys, now)

    def _refusal(self, keys: list[str], now: float) -> str:
        self._forget(now)
        for key in keys:
            used = self.used(key, now)
            if used >= self.seconds:
                oldest = self._spent.oldest(key)
                wait = math.ceil(oldest + self.window_s - now) if oldest is not None else math.ceil(self.window_s)
                return (f"this server is shared: each visitor may use {self.seconds:g} s of image generation "
                        f"per {self.window_s:g} s, and you have used {used:.0f} s; try again in {max(1, wait)} s")
            typical = self._typical.get(key, (0.0, now))[0]
            if self._running.get(key) and used + typical > self.seconds:
                return (f"this server is shared: your requests take about {typical:.0f} s each and one is still running; "
                        f"send the next when it has finished (each visitor may use {self.seconds:g} s per {self.window_s:g} s)")
        return ""

    def admit(self, keys: list[str]) -> int:
        """A call id for a new call by ``keys``; OverBudget when any of them has used its share."""
        now = self.clock()
        with self._lock:
            refusal = self._refusal(keys, now)
            if refusal:
                raise OverBudget(refusal)
            self._calls += 1
            for key in keys:
                self._running.setdefault(key, {})[self._calls] = now
            return self._calls

    def charge(self, keys: list[str], call: int) -> None:
        """The call has finished: its time counts against each of ``keys`` for the rest of the window."""
        now = self.clock()
        with self._lock:
            for key in keys:
                running = self._running.get(key, {})
                start = running.pop(call, now)
                if not running:
                    self._running.pop(key, None)
                self._spent.add(key, now, now - start)
                typical = self._typical.get(key, (now - start, now))[0]
                self._typical[key] = (typical + TYPICAL_WEIGHT * (now - start - typical), now)

    def metered(self, fn: Callable) -> Callable:
        """``fn`` with a leading ``request: gr.Request`` (Gradio fills it in; API schemas do not show it), admitted
        and charged around each call."""
        @functools.wraps(fn)
        def wrapper(request: gr.Request, *args: Any, **kwargs: Any) -> Any:
            keys = visitors(request, self.trust_forwarded)
            call = self.admit(keys)
            try:
                return fn(*args, **kwargs)
            finally:
                self.charge(keys, call)

        signature = inspect.signature(fn)
        request = inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=gr.Request)
        wrapper.__signature__ = signature.replace(parameters=[request, *signature.parameters.values()])
        wrapper.__annotations__ = {"request": gr.Request, **getattr(fn, "__annotations__", {})}
        del wrapper.__wrapped__  # Gradio must read the signature above, not fn's
        return wrapper


class QueueAdmission:
    """ASGI middleware: a visitor already over its budget is refused when it asks to join Gradio's queue (HTTP 429,
    any queued request, until its window moves on), so its requests never wait in line ahead of other visitors'.
    The check inside each handler stays, for calls that joined before the budget ran out."""

    def __init__(self, app: Any, *, budget: VisitorBudget, max_body_bytes: int = 16 * 2**20):
        self.app = app
        self.budget = budget
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if scope.get("method") != "POST" or not (path.endswith("/queue/join") or "/call/" in path):
            await self.app(scope, receive, send)
            return
        body, more = b"", True
        while more and len(body) <= self.max_body_bytes:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        refusal = self.budget.refusal(self.keys(scope, body, self.budget.trust_forwarded))
        if refusal:
            payload = json.dumps({"detail": refusal}).encode()
            await send({"type": "http.response.start", "status": 429, "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": payload})
            return
        replayed = False

        async def replay() -> dict:
            """What was read, once (with more_body if the body was longer than we read), then the real stream."""
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": more}

        await self.app(scope, replay, send)

    @staticmethod
    def keys(scope: dict, body: bytes, trust_forwarded: bool = False) -> list[str]:
        """The visitor keys of a queue request: the session in its JSON body, and the proxy-reported address."""
        try:
            session = json.loads(body).get("session_hash") if body else None
        except (ValueError, AttributeError, RecursionError):
            session = None
        headers = dict(scope.get("headers") or [])
        address = forwarded_client(headers.get(b"x-forwarded-for", b"").decode("latin-1")) if trust_forwarded else ""
        return ([f"session:{session}"] if isinstance(session, str) and session else []) + ([f"address:{address}"] if address else [])
