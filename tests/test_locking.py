"""Repository locks: shared and exclusive leases that expire by themselves."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from chute import forked
from chute.errors import Locked
from chute.locking import EXCLUSIVE, SHARED, GuardedStore, Holder, Lock, host_hash, lock
from chute.store.local import LocalStore


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "repo")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _foreign_lock(store: LocalStore, kind: str, expires: float, host: str = "elsewhere") -> None:
    doc = {"kind": kind, "op": "prune", "expires": expires, "host": host, "pid": 1, "start": 1}
    store.put("locks/foreign", json.dumps(doc).encode())


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_shared_locks_coexist_and_exclusive_waits_for_them(store: LocalStore) -> None:
    with (
        lock(store, SHARED, "put", wait=0),
        lock(store, SHARED, "put", wait=0),
        pytest.raises(Locked, match="running put holds a shared lock"),
    ):
        lock(store, EXCLUSIVE, "prune", wait=0)
    with (
        lock(store, EXCLUSIVE, "prune", wait=0),
        pytest.raises(Locked, match="running prune holds an exclusive lock"),
    ):
        lock(store, SHARED, "put", wait=0)
    assert list(store.list("locks")) == []


def test_a_refused_acquirer_leaves_no_lock_behind(store: LocalStore) -> None:
    with lock(store, EXCLUSIVE, "prune", wait=0):
        with pytest.raises(Locked):
            lock(store, SHARED, "put", wait=0)
        assert len(list(store.list("locks"))) == 1


def test_an_expired_lease_of_another_host_is_ignored_and_removed(store: LocalStore) -> None:
    clock = Clock()
    _foreign_lock(store, EXCLUSIVE, expires=clock.now - 1)
    held = Lock(store, SHARED, "put", clock=clock).acquire(wait=0)
    assert not store.exists("locks/foreign")
    held.release()


def test_a_live_lease_of_another_host_blocks_until_it_expires(store: LocalStore) -> None:
    clock = Clock()
    _foreign_lock(store, EXCLUSIVE, expires=clock.now + 100)
    with pytest.raises(Locked, match="lease ends in 100 s"):
        Lock(store, SHARED, "put", clock=clock).acquire(wait=0)
    clock.now += 101
    Lock(store, SHARED, "put", clock=clock).acquire(wait=0).release()


def test_a_lock_of_a_dead_process_on_this_machine_is_stale_at_once(store: LocalStore) -> None:
    doc = {"kind": EXCLUSIVE, "op": "prune", "expires": 4e9, "host": host_hash()}
    store.put("locks/dead", json.dumps({**doc, "pid": _dead_pid(), "start": 5}).encode())
    lock(store, SHARED, "put", wait=0).release()
    assert not store.exists("locks/dead")


def test_a_live_process_on_this_machine_is_not_stale() -> None:
    me = Holder.me()
    assert not me.gone()
    assert Holder(me.host, me.pid, (me.start or 0) + 1).gone()  # the pid was reused


def test_renewal_extends_the_lease(store: LocalStore) -> None:
    clock = Clock()
    held = Lock(store, SHARED, "put", lease=100, clock=clock).acquire(wait=0)
    clock.now += 60  # past the trusted part of the first lease (75 s), within the lease
    held.renew()
    clock.now += 60
    held.ensure()
    held.release()


def test_a_lease_not_renewed_in_time_is_lost_and_guards_writes(store: LocalStore) -> None:
    clock = Clock()
    held = Lock(store, SHARED, "put", lease=100, clock=clock).acquire(wait=0)
    guarded = GuardedStore(store, held)
    guarded.put("a", b"1")
    clock.now += 76  # a suspended process wakes up too late to trust its lease
    with pytest.raises(Locked, match="lease ran out"):
        guarded.put("b", b"2")
    with pytest.raises(Locked):
        guarded.delete("a")
    assert guarded.get("a") == b"1"  # reading needs no lock
    assert not store.exists("b")
    held.release()


def test_a_lock_removed_by_another_process_is_lost(store: LocalStore) -> None:
    clock = Clock()
    held = Lock(store, SHARED, "put", lease=100, clock=clock).acquire(wait=0)
    store.delete(held.name)  # another process judged it stale (a clock running ahead)
    with pytest.raises(Locked, match="removed it as stale"):
        held.verify()
    with pytest.raises(Locked):
        GuardedStore(store, held).put("x", b"1")
    held.release()


def test_an_unreadable_lock_object_does_not_block(store: LocalStore) -> None:
    store.put("locks/garbage", b"not json")
    lock(store, EXCLUSIVE, "prune", wait=0).release()


def test_a_forked_copy_renews_the_lease_and_hands_it_back(store: LocalStore) -> None:
    clock = Clock()
    held = Lock(store, SHARED, "put", lease=100, clock=clock).acquire(wait=0)
    held.pause()

    def in_copy(_: object) -> None:
        clock.now += 60
        held.renew()  # what its renewal thread does

    forked.apart(in_copy)
    held.take_back()
    clock.now += 60  # past this process's own trust (75 s), within the copy's renewal
    held.verify()
    GuardedStore(store, held).put("a", b"1")
    held.release()
    assert not list(store.list("locks"))


def test_taking_back_a_lease_removed_meanwhile_loses_the_lock(store: LocalStore) -> None:
    clock = Clock()
    held = Lock(store, SHARED, "put", lease=100, clock=clock).acquire(wait=0)
    held.pause()
    store.delete(held.name)  # judged stale while the copy held it
    held.take_back()
    with pytest.raises(Locked, match="removed it as stale"):
        GuardedStore(store, held).put("a", b"1")
    held.release()


def test_taking_back_an_unrenewed_lease_keeps_it(store: LocalStore) -> None:
    clock = Clock()
    held = Lock(store, SHARED, "put", lease=100, clock=clock).acquire(wait=0)
    held.pause()
    held.take_back()
    clock.now += 70
    held.verify()
    clock.now += 10  # nobody renewed it: 80 s is past the trusted 75 s
    with pytest.raises(Locked, match="lease ran out"):
        held.ensure()
    held.release()
