"""How long to wait before trying a broker again: one policy for every retry loop."""

from __future__ import annotations

import random

#: The first pause; each retry doubles it, up to the transport's ``max_backoff``.
FIRST_DELAY = 0.2


def backoff_delay(attempt: int, max_delay: float) -> float:
    """The pause before retry number ``attempt`` (1, 2, ...), in seconds.

    It doubles from :data:`FIRST_DELAY` up to ``max_delay``, within 20 % either
    way, so that the clients and servers a broker restart cut off together do
    not all come back in the same instant.
    """
    doubled = FIRST_DELAY * 2.0 ** min(max(attempt, 1) - 1, 30)
    return min(max_delay, doubled * random.uniform(0.8, 1.2))
