"""The upload quota: a real Gradio app behind the middleware, uploads sent to Gradio's own route over HTTP."""
from __future__ import annotations

import os

import httpx
import pytest

from explorer.ui.quota import UploadQuota

from .conftest import free_port

MB = 2**20


@pytest.fixture
def quota_app(tmp_path, monkeypatch):
    import gradio as gr

    from explorer.outputs import OutputDir
    from explorer.ui.app import security_options

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    with gr.Blocks() as demo:
        gr.File()
    options = security_options(OutputDir(tmp_path / "out"), max_total_bytes=5 * MB, per_client_bytes=int(2.5 * MB),
                               trust_forwarded=True)  # as behind a Space's proxy: X-Forwarded-For names the client
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(), quiet=True, **options)
    try:
        yield url, tmp_path / "gradio"
    finally:
        demo.close()


def upload(url: str, size: int, client: str) -> httpx.Response:
    """Random bytes: Gradio stores identical files once."""
    return httpx.post(f"{url}gradio_api/upload", files={"files": ("x.bin", os.urandom(size))}, headers={"X-Forwarded-For": client},
                      timeout=60)


def test_one_client_cannot_fill_the_disk(quota_app):
    url, folder = quota_app
    assert upload(url, MB, "10.0.0.1").status_code == 200
    assert upload(url, MB, "10.0.0.1").status_code == 200
    refused = upload(url, MB, "10.0.0.1")
    assert refused.status_code == 413 and "per client" in refused.text
    assert upload(url, MB, "10.0.0.2").status_code == 200  # others still may
    spoofed = upload(url, MB, "6.6.6.6, 10.0.0.1")  # a client-written entry before the proxy's changes nothing
    assert spoofed.status_code == 413 and "per client" in spoofed.text
    assert upload(url, MB, "10.0.0.3").status_code == 200
    full = upload(url, 2 * MB, "10.0.0.4")
    assert full.status_code == 413 and "upload space is full" in full.text
    on_disk = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert on_disk <= 5 * MB
    assert httpx.get(url, timeout=60).status_code == 200  # the app is alive


def test_the_window_forgets_old_uploads():
    now = [0.0]
    quota = UploadQuota(None, per_client_bytes=100, window_s=60, clock=lambda: now[0])
    scope = {"headers": [(b"content-length", b"80")], "client": ("127.0.0.1", 1)}
    assert quota.check(scope) == ""
    assert "per client" in quota.check(scope)
    now[0] = 61.0
    assert quota.check(scope) == ""
    assert "Content-Length" in quota.check({"headers": [], "client": ("127.0.0.1", 1)})
    assert quota._sent.keys() == ["127.0.0.1"]  # clients with nothing left in the window are forgotten
    forged = {"headers": [(b"content-length", b"80"), (b"x-forwarded-for", b"1.1.1.1")], "client": ("127.0.0.1", 1)}
    assert "per client" in quota.check(forged)  # no proxy in front: a header the client wrote changes nothing
