"""``podium objects``: commands of this layer."""

import click


@click.group()
def group() -> None:
    """Commands of the objects layer."""
