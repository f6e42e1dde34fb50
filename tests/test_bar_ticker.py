"""The progress bar's ticker (pot_zk/core/console.py BarTicker): leaving it never waits for ever."""

from __future__ import annotations

import io
import signal
import time

from tqdm import tqdm

from pot_zk.core.console import TICKER_JOIN_S, BarTicker


def test_leaving_the_ticker_of_a_bar_whose_redraw_a_ctrl_c_interrupted_does_not_hang():
    """review44: tqdm's refresh takes its lock and releases it without try/finally, so a Ctrl-C
    raised in the main thread during a redraw leaves the lock held by the main thread; the ticker
    thread then waits on it for ever, and leaving the ticker waited for the ticker: `pot-zk
    train` hung after its first Ctrl-C. Here the main thread holds the lock as that redraw left it."""
    bar = tqdm(total=3, file=io.StringIO(), mininterval=0)

    def hung(*_):
        raise AssertionError("leaving the ticker waits for ever")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(int(TICKER_JOIN_S) + 20)
    locked = False
    try:
        ticker = BarTicker(bar, lambda: "proofs 0/1 done", interval_s=0.01)
        ticker.__enter__()
        time.sleep(0.05)
        locked = bar.get_lock().acquire()  # the interrupted redraw's, never released (until this test ends)
        time.sleep(0.1)  # the ticker is waiting for it now
        started = time.monotonic()
        ticker.__exit__(None, None, None)
        assert time.monotonic() - started < TICKER_JOIN_S + 5
        assert bar.postfix == "proofs 0/1 done"  # the last draw, by the main thread that holds the lock
    finally:
        if locked:
            bar.get_lock().release()  # tqdm's lock is shared by every bar of the process: the ticker ends now
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
