"""SPSC ring: API behaviour, and two-thread stress (nothing lost, duplicated or reordered)."""
import threading
import time

import numpy as np
import pytest

import orpflow as of
from orpflow._core import ring as cring
from helpers import stress


def seq_events(start, n):
    arr = of.empty_events(n)
    arr["seq"] = np.arange(start, start + n)
    arr["price"] = arr["seq"] * 7
    return arr


def test_capacity_rounds_to_power_of_two():
    assert of.EventRing(5).capacity == 8
    assert of.EventRing(1024).capacity == 1024
    for bad in (0, 1, -4):
        with pytest.raises(ValueError):
            of.EventRing(bad)


def test_push_pop_fifo_and_partial_when_full():
    r = of.EventRing(8)
    assert r.push(seq_events(0, 5)) == 5 and len(r) == 5
    assert r.push(seq_events(5, 10)) == 3                 # only 3 free slots: the rest is refused
    out = r.pop(4)
    assert out["seq"].tolist() == [0, 1, 2, 3] and len(r) == 4
    assert r.push(seq_events(8, 4)) == 4                  # wraps around the slot array
    assert r.pop(100)["seq"].tolist() == [4, 5, 6, 7, 8, 9, 10, 11]
    assert len(r.pop()) == 0 and len(r) == 0


def test_pop_into_and_validation():
    r = of.EventRing(16)
    r.push(seq_events(0, 3))
    out = of.empty_events(10)
    assert r.pop_into(out) == 3 and out["seq"][:3].tolist() == [0, 1, 2]
    with pytest.raises(TypeError):
        r.push(np.zeros(3))
    ro = of.empty_events(2)
    ro.flags.writeable = False
    with pytest.raises(ValueError):
        r.pop_into(ro)
    assert r.push(of.empty_events(0)) == 0


def test_records_survive_byte_for_byte():
    r = of.EventRing(4)
    src = of.empty_events(3)
    for name in of.EVENT_DTYPE.names:
        src[name] = np.arange(3) + 2 ** 31 + (3 if name not in ("flags", "instrument") else 0)
    r.push(src)
    assert r.pop(3).tobytes() == src.tobytes()


def _run_pair(producer, consumer):
    errors = []
    def wrap(fn):
        def run():
            try:
                fn()
            except BaseException as exc:      # surfaced by the assert below
                errors.append(exc)
        return run
    # daemon: if one side dies, the other (spinning without the GIL) must not hang the run
    threads = [threading.Thread(target=wrap(producer), daemon=True),
               threading.Thread(target=wrap(consumer), daemon=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "stress threads did not finish"
    assert not errors, errors


def test_stress_ten_million_single_records_nogil():
    """C-level push/pop, one record at a time, producer and consumer on two threads."""
    n = stress(10_000_000)
    r = of.EventRing(1024)
    result = {}
    _run_pair(lambda: cring._produce_sequence(r, n),
              lambda: result.setdefault("errors", cring._consume_check(r, n)))
    assert result["errors"] == 0 and len(r) == 0


def test_stress_ten_million_through_python_api():
    """numpy batches through push/pop (GIL released in the copies), odd batch sizes to wrap."""
    n, batch = stress(10_000_000), 3001
    r = of.EventRing(8192)
    src = seq_events(0, n)
    state = {"got": 0, "bad": 0}

    def produce():
        i = 0
        while i < n:
            k = r.push(src[i:i + batch])
            i += k
            if not k:
                time.sleep(0.0001)     # full: let the consumer have the GIL (and the core)

    def consume():
        out = of.empty_events(5000)
        while state["got"] < n:
            k = r.pop_into(out)
            if not k:
                time.sleep(0.0001)
            else:
                got = out[:k]
                expect = np.arange(state["got"], state["got"] + k)
                state["bad"] += int(np.count_nonzero(got["seq"] != expect) + np.count_nonzero(got["price"] != expect * 7))
                state["got"] += k

    _run_pair(produce, consume)
    assert state == {"got": n, "bad": 0}


def test_drivers_refuse_none_instead_of_crashing():
    with pytest.raises(TypeError):
        cring._produce_sequence(None, 1)
    with pytest.raises(TypeError):
        cring._consume_check(None, 1)


def test_size_from_a_third_thread_stays_in_bounds():
    """len(ring) from a thread that is neither producer nor consumer (Engine.stats(), metrics)
    races both indices: it must stay within [0, capacity] and never raise, while records move."""
    n, cap = stress(2_000_000), 64
    r = of.EventRing(cap)
    result, sizes = {}, {"calls": 0, "bad": [], "seen": set()}
    done = threading.Event()

    def consume():
        try:
            result["errors"] = cring._consume_check(r, n)
        finally:
            done.set()

    def watch():
        while not done.is_set() or sizes["calls"] < 1000:
            k = len(r)
            sizes["calls"] += 1
            sizes["seen"].add(k)
            if not 0 <= k <= cap:
                sizes["bad"].append(k)
            # let go of the GIL between calls: the debug build's line tracing takes the GIL in
            # every traced nogil call, so a watcher that never sleeps would starve both sides
            time.sleep(0.00002)

    threads = [threading.Thread(target=f, daemon=True)
               for f in (lambda: cring._produce_sequence(r, n), consume, watch)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads)
    assert result["errors"] == 0 and sizes["bad"] == []
    assert sizes["calls"] >= 1000 and len(r) == 0
