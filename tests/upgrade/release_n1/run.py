"""Any ``podium`` command as release acacia ran it, for the upgrade tests.

    python -m tests.upgrade.release_n1.run conductor --database-url URL ...

The modules of the cloud that changed since acacia are replaced, before
anything imports them, by acacia's (kept beside this file); the rest of
podium is this code's. So ``podium conductor`` serves acacia's objects,
tables, migrations and build flow, as an acacia conductor did.
"""

from __future__ import annotations

import importlib
import sys

#: podium's module -> acacia's; in import order (the models before the
#: objects, whose database functions import them).
ACACIA = {
    "podium.cloud.models": "tests.upgrade.release_n1.models",
    "podium.cloud.objects": "tests.upgrade.release_n1.objects",
    "podium.cloud.rpcapi": "tests.upgrade.release_n1.rpcapi",
    "podium.cloud.service": "tests.upgrade.release_n1.service",
    "podium.cloud.conductor": "tests.upgrade.release_n1.conductor",
    "podium.cloud.app": "tests.upgrade.release_n1.app",
}


def install() -> None:
    for name, acacia in ACACIA.items():
        if name in sys.modules:
            raise RuntimeError(f"{name} was imported before acacia's could replace it")
        sys.modules[name] = importlib.import_module(acacia)


if __name__ == "__main__":
    install()
    from podium.cli import main

    main()
