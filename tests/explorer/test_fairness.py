"""Per-visitor generator budget: unit behaviour with a fake clock, and a real app refusing one greedy client."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from explorer.ui.fairness import OverBudget, VisitorBudget, visitors

from .conftest import free_port


def test_a_visitor_over_its_share_waits_for_the_window_to_move_on():
    now = [0.0]
    budget = VisitorBudget(seconds=10, window_s=60, clock=lambda: now[0])
    call = budget.admit(["session:a"])
    now[0] = 12.0
    with pytest.raises(OverBudget, match="used 12 s"):  # a call still running counts too
        budget.admit(["session:a"])
    budget.charge(["session:a"], call)
    budget.admit(["session:b"])  # others are not affected
    with pytest.raises(OverBudget, match="try again in 60 s"):
        budget.admit(["session:a"])
    now[0] = 72.5
    budget.charge(["session:a"], budget.admit(["session:a"]))  # the window moved past the 12 s call
    assert set(budget._spent.keys()) <= {"session:a"} and "session:b" in budget._running  # idle keys are forgotten


def test_admission_reads_the_session_from_the_queue_request_and_the_address_from_the_proxy():
    from explorer.ui.fairness import QueueAdmission

    scope = {"headers": [(b"x-forwarded-for", b"1.2.3.4, 10.0.0.9")]}
    assert QueueAdmission.keys(scope, b'{"session_hash": "abc", "data": []}', True) == ["session:abc", "address:10.0.0.9"]
    assert QueueAdmission.keys(scope, b'{"session_hash": "abc"}') == ["session:abc"]  # no proxy: the header is the client's
    assert QueueAdmission.keys({"headers": []}, b"not json") == []


def test_the_address_a_proxy_reports_is_its_last_forwarded_entry():
    request = SimpleNamespace(session_hash="s1", headers={"x-forwarded-for": "6.6.6.6, 10.1.2.3"})
    assert visitors(request, trust_forwarded=True) == ["session:s1", "address:10.1.2.3"]  # the client wrote 6.6.6.6
    assert visitors(request) == ["session:s1"]  # without a proxy in front, anyone can write the header
    assert visitors(SimpleNamespace(session_hash="s2", headers={}), trust_forwarded=True) == ["session:s2"]
    assert visitors(None) == []


@pytest.fixture
def budget_app(checkpoints_dir, tmp_path, gradio_env):
    from gradio_client import Client

    from explorer.derived import Catalog
    from explorer.outputs import OutputDir
    from explorer.registry import CheckpointRegistry
    from explorer.ui.app import build_app, launch_options, security_options

    out = OutputDir(tmp_path / "out")
    budget = VisitorBudget(seconds=1e-6, window_s=600)  # any finished call uses up the share
    demo = build_app(Catalog(CheckpointRegistry([checkpoints_dir])), out=out, budget=budget)
    demo.queue(default_concurrency_limit=2, max_size=64)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(), quiet=True,
                            **security_options(out, budget=budget), **launch_options())
    clients = [Client(url, verbose=False, download_files=str(tmp_path / f"d{i}")) for i in range(2)]
    try:
        yield clients
    finally:
        for client in clients:
            client.close()
        demo.close()


def test_a_greedy_client_is_refused_and_others_are_served(budget_app):
    """Over its share, a client is refused before it joins the queue (HTTP 429), so it cannot wait in line ahead of others."""
    import httpx

    greedy, other = budget_app
    assert greedy.predict("tiny", "0-3", api_name="/generate")[1]["seeds"] == [0, 1, 2, 3]
    calls = (lambda: greedy.predict("tiny", "0-3", api_name="/generate"), lambda: greedy.predict("tiny", "0,1", 4, api_name="/interpolate"),
             lambda: greedy.predict(api_name="/models"))  # until the window moves on, every queued request of it waits
    for call in calls:
        with pytest.raises(httpx.HTTPStatusError) as info:
            call()
        assert info.value.response.status_code == 429 and "each visitor may use" in info.value.response.json()["detail"]
    assert [m["name"] for m in other.predict(api_name="/models")] == ["tiny", "tiny-grey"]  # listings use no generator time
    assert other.predict("tiny", 5, {}, api_name="/edit")  # another visitor still has its share


def test_visitors_who_left_are_forgotten():
    """A new session per request must not grow the server's memory: keys leave with their window."""
    now = [0.0]
    budget = VisitorBudget(seconds=10, window_s=60, clock=lambda: now[0])
    for i in range(100):
        budget.charge([f"session:{i}"], budget.admit([f"session:{i}"]))
    assert len(budget._spent.keys()) == 100
    now[0] = 61.0
    call = budget.admit(["session:new"])
    assert budget._spent.keys() == [] and set(budget._running) == {"session:new"}
    budget.charge(["session:new"], call)
    now[0] = 601.0
    budget.admit(["session:newer"])
    assert set(budget._typical) == {"session:new"}  # typical costs go too, ten windows after a key's last call


def test_a_visitor_whose_calls_are_long_cannot_start_several_at_once():
    """Running calls count as the visitor's typical cost: after a 9 s walk, one more may start, not four together."""
    now = [0.0]
    budget = VisitorBudget(seconds=10, window_s=60, clock=lambda: now[0])
    walk = budget.admit(["session:a"])
    now[0] = 9.0
    budget.charge(["session:a"], walk)
    now[0] = 70.0  # the walk left the window; its cost is still remembered
    budget.admit(["session:a"])
    with pytest.raises(OverBudget, match="take about 9 s each and one is still running"):
        budget.admit(["session:a"])
    for _ in range(6):  # a new visitor's page load: several short calls at once, nothing known about it yet
        budget.admit(["session:b"])

