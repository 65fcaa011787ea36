"""podium: versioned objects over a message bus, with a conductor at the database."""

from typing import Any

__all__ = ["__version__"]


def __getattr__(name: str) -> Any:
    # Read on demand: importlib.metadata costs a client command a noticeable
    # part of its start-up, and almost no command prints the version.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("podium")
        except PackageNotFoundError:  # a source tree that was never installed
            return "0.0.0"
    raise AttributeError(f"module 'podium' has no attribute {name!r}")
