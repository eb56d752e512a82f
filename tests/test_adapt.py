"""The adaptive transfer size: grow while throughput grows, hold, shrink on failures, remember."""

from __future__ import annotations

from pathlib import Path

import pytest

from chute.adapt import MAX_SIZE, Learned, Sizer, load_learned, save_learned, state_dir

KIB = 1024


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def run_round(sizer: Sizer, clock: Clock, seconds_per_request: float, window: int) -> None:
    """One round of requests at the current size, each taking the given time."""
    for _ in range(sizer.round_requests):
        k = sizer.windows(window)
        sizer.started()
        clock.now += seconds_per_request
        sizer.done(k * window)


def test_grows_while_bigger_requests_pay_then_holds() -> None:
    clock = Clock()
    sizer = Sizer(clock=clock)
    window = 16 * KIB
    # Latency-bound: a request costs 0.03 s whatever its size, until 8 windows; then bandwidth.
    for _ in range(12):
        k = sizer.windows(window)
        run_round(sizer, clock, 0.03 * max(1, k / 8), window)
    assert sizer.history[0] == window
    assert sizer.history[:4] == [window, 2 * window, 4 * window, 8 * window]
    assert sizer.size == 8 * window  # 16 windows did not pay: back to 8, held
    learned = sizer.learned()
    assert learned is not None and learned.size == 8 * window and learned.rate > 0


def test_shrinks_on_failure_and_never_below_one_window() -> None:
    sizer = Sizer(size=8 << 20, clock=Clock())
    assert sizer.windows(1 << 20) == 8
    sizer.failed()
    assert sizer.size == 4 << 20
    for _ in range(20):
        sizer.failed()
    assert sizer.windows(64 * KIB) == 1
    learned = sizer.learned()
    assert learned is not None and learned.size == sizer.size


def test_a_learned_size_is_the_start_and_caps_apply() -> None:
    assert Sizer(size=MAX_SIZE * 4).size == MAX_SIZE
    sizer = Sizer(size=256 * KIB)
    assert sizer.windows(16 * KIB) == 16
    assert sizer.windows(1 << 20) == 1  # a blob with bigger windows: one window at least


def test_nothing_measured_is_not_learned() -> None:
    sizer = Sizer()
    sizer.windows(8 << 20)
    assert sizer.learned() is None


def test_learned_sizes_persist_per_peer_and_direction(isolated_home: Path) -> None:
    assert state_dir() == isolated_home / ".local" / "state" / "chute" / "peers"
    assert load_learned("b", "push") is None
    save_learned("b", "push", Learned(1 << 20, 5e6, 1.0))
    save_learned("b", "pull", Learned(2 << 20, 6e6, 2.0))
    assert load_learned("b", "push") == Learned(1 << 20, 5e6, 1.0)
    assert load_learned("b", "pull") == Learned(2 << 20, 6e6, 2.0)
    (state_dir() / "b.json").write_text("{not json")
    assert load_learned("b", "push") is None


def test_state_dir_follows_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "st"))
    assert state_dir() == tmp_path / "st" / "chute" / "peers"
