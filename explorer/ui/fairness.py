"""A compute budget per visitor, so that one client cannot take the image workers from everyone else.

Gradio's queue serves requests in arrival order: a client that keeps several of the most expensive requests waiting
(512-frame walks, 64-seed grids) makes every other visitor wait behind them. Each image request here is metered:
a visitor who has used more than ``seconds`` of generator time in the last ``window_s`` seconds is refused at once,
with the time to wait, until the window has moved on. Normal use stays far below the budget (one request costs
0.1-0.5 s). A visitor is its Gradio session (a browser tab, one gradio_client.Client) and, behind a proxy such as a
Hugging Face Space's, also the client address the proxy reports (the last X-Forwarded-For entry, which the proxy
writes; the earlier ones come from the client and are not trusted).
"""
from __future__ import annotations

import functools
import inspect
import math
import threading
import time
from collections import deque
from typing import Any, Callable

import gradio as gr

from dcgan.errors import DCGANError

SECONDS = 30.0    # generator time one visitor may use per window (a quarter of two workers' time)
WINDOW_S = 60.0


class OverBudget(DCGANError):
    """A visitor asked for more generator time than its share."""


def forwarded_client(forwarded: str) -> str:
    """The client address in an X-Forwarded-For header: its last entry, the one the nearest proxy wrote (a client
    can put anything in the earlier ones); '' for none."""
    return forwarded.split(",")[-1].strip() if forwarded else ""


def visitors(request: gr.Request | None) -> list[str]:
    """The keys a request is counted under: its session, and the proxy-reported client address if there is one."""
    if request is None:
        return []
    keys = [f"session:{request.session_hash}"] if getattr(request, "session_hash", None) else []
    headers = getattr(request, "headers", None) or {}
    address = forwarded_client(headers.get("x-forwarded-for", "") if hasattr(headers, "get") else "")
    return keys + ([f"address:{address}"] if address else [])


class VisitorBudget:
    """Thread-safe; ``metered(fn)`` wraps a Gradio handler so that each call is admitted, timed and charged."""

    def __init__(self, seconds: float = SECONDS, window_s: float = WINDOW_S, clock: Callable[[], float] = time.monotonic):
        self.seconds = seconds
        self.window_s = window_s
        self.clock = clock
        self._spent: dict[str, deque[tuple[float, float]]] = {}   # key -> (end time, seconds) of finished calls
        self._running: dict[str, dict[int, float]] = {}           # key -> {call id: start time}
        self._calls = 0
        self._lock = threading.Lock()

    def used(self, key: str, now: float) -> float:
        """Generator seconds ``key`` used in the window, counting calls still running (call with the lock held)."""
        spent = self._spent.get(key, deque())
        while spent and spent[0][0] < now - self.window_s:
            spent.popleft()
        if not spent:
            self._spent.pop(key, None)
        return sum(s for _, s in spent) + sum(now - start for start in self._running.get(key, {}).values())

    def admit(self, keys: list[str]) -> int:
        """A call id for a new call by ``keys``; OverBudget when any of them has used its share."""
        now = self.clock()
        with self._lock:
            for key in keys:
                used = self.used(key, now)
                if used >= self.seconds:
                    spent = self._spent.get(key)
                    wait = math.ceil(spent[0][0] + self.window_s - now) if spent else math.ceil(self.window_s)
                    raise OverBudget(f"this server is shared: each visitor may use {self.seconds:g} s of image generation "
                                     f"per {self.window_s:g} s, and you have used {used:.0f} s; try again in {max(1, wait)} s")
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
                self._spent.setdefault(key, deque()).append((now, now - start))

    def metered(self, fn: Callable) -> Callable:
        """``fn`` with a leading ``request: gr.Request`` (Gradio fills it in; API schemas do not show it), admitted
        and charged around each call."""
        @functools.wraps(fn)
        def wrapper(request: gr.Request, *args: Any, **kwargs: Any) -> Any:
            keys = visitors(request)
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
