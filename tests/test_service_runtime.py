"""Process runtime: stop signals."""

from __future__ import annotations

import os
import signal

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
