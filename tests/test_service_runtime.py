"""Process runtime: stop signals, the heap frozen after start-up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from podium.service import StopSignals


def test_a_stop_signal_sent_before_wait_is_kept() -> None:
    """A supervisor may signal the moment it reads "ready", before wait() runs."""
    before = signal.getsignal(signal.SIGTERM)
    with StopSignals() as stop_signals:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop_signals.wait() == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before


def test_sigint_is_a_stop_signal_too() -> None:
    with StopSignals() as stop_signals:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop_signals.wait() == signal.SIGINT


def test_freeze_heap_leaves_start_up_out_of_later_collections() -> None:
    """What start-up built is no longer walked by a full collection (in a process of its own:
    freezing is for a service's whole life)."""
    script = """
import gc
import podium.conductor, podium.cloud.objects, sqlalchemy.orm
from podium.service import freeze_heap
tracked = len(gc.get_objects())
freeze_heap()
print(tracked, len(gc.get_objects()), gc.get_freeze_count())
"""
    output = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    tracked, walked, frozen = map(int, output.split())
    assert tracked > 20_000
    assert walked < tracked / 20
    assert frozen > tracked / 2
