"""Conductor: the only service that touches the database, on behalf of the others."""
