"""Claim files: exclusive, retaken only from dead or silent owners."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnunet_ext.predict.claims import ClaimStore, pid_alive


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def write_claim(store: ClaimStore, case: str, *, host: str, pid: int, age: float = 0.0) -> None:
    store.folder.mkdir(parents=True, exist_ok=True)
    path = store.path(case)
    path.write_text(json.dumps({"host": host, "pid": pid, "token": "other"}))
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))


def test_a_live_claim_blocks_and_a_release_frees(tmp_path):
    store = ClaimStore(tmp_path, timeout=60)
    claim = store.try_claim("c")
    assert claim is not None
    assert store.try_claim("c") is None
    assert claim.held()
    claim.release()
    assert not store.path("c").exists()
    again = store.try_claim("c")
    assert again is not None
    again.release()
    store.cleanup()
    assert not store.folder.exists()


def test_claim_of_a_dead_process_on_this_host_is_retaken(tmp_path):
    store = ClaimStore(tmp_path, timeout=600)
    write_claim(store, "c", host=store.host, pid=dead_pid())
    fresh = store.try_claim("fresh")  # no claim to retake: not a retry
    assert fresh is not None
    fresh.release()
    claim = store.try_claim("c")
    assert claim is not None
    assert json.loads(store.path("c").read_text())["pid"] == os.getpid()
    assert store.retaken == ["c"]  # what run summaries count as retries
    claim.release()


def test_claim_of_a_live_process_on_this_host_is_kept(tmp_path):
    store = ClaimStore(tmp_path, timeout=600)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        write_claim(store, "c", host=store.host, pid=sleeper.pid)
        assert store.try_claim("c") is None
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not pid_alive(sleeper.pid)
    claim = store.try_claim("c")
    assert claim is not None
    claim.release()


@pytest.mark.parametrize(("age", "retaken"), [(5.0, False), (120.0, True)])
def test_claim_of_another_host_expires_by_heartbeat_age(tmp_path, age, retaken):
    store = ClaimStore(tmp_path, timeout=60)
    write_claim(store, "c", host="elsewhere.example", pid=1, age=age)
    claim = store.try_claim("c")
    assert (claim is not None) == retaken
    assert store.retaken == (["c"] if retaken else [])
    if claim is not None:
        claim.release()


def test_heartbeat_keeps_a_long_claim_alive(tmp_path):
    store = ClaimStore(tmp_path, timeout=0.4)
    claim = store.try_claim("c")
    assert claim is not None
    other = ClaimStore(tmp_path, timeout=0.4)
    other.host = "elsewhere.example"  # judges by heartbeat age only
    time.sleep(1.0)  # well past the timeout: only the heartbeat keeps it fresh
    assert other.try_claim("c") is None
    claim.release()


def test_a_broken_claim_is_no_longer_held(tmp_path):
    store = ClaimStore(tmp_path, timeout=60)
    claim = store.try_claim("c")
    assert claim is not None
    claim._stop.set()
    store.path("c").unlink()
    write_claim(store, "c", host="elsewhere.example", pid=1)
    assert not claim.held()
    claim.release()  # leaves the other claim alone
    assert store.path("c").exists()


@settings(max_examples=15, deadline=None)
@given(st.integers(2, 8), st.booleans())
def test_exactly_one_of_many_racing_claimers_wins(tmp_path_factory, threads, stale_first):
    folder = tmp_path_factory.mktemp("race")
    stores = [ClaimStore(folder, timeout=60) for _ in range(threads)]
    if stale_first:
        write_claim(stores[0], "c", host=stores[0].host, pid=dead_pid())
    barrier = threading.Barrier(threads)
    won = []

    def attempt(store: ClaimStore) -> None:
        barrier.wait()
        claim = store.try_claim("c")
        if claim is not None:
            won.append(claim)

    workers = [threading.Thread(target=attempt, args=(s,)) for s in stores]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(won) == 1
    assert won[0].held()
    for claim in won:
        claim.release()
