"""``podium db``: commands of this layer."""

import click


@click.group()
def group() -> None:
    """Commands of the db layer."""
