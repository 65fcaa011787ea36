"""Versioned objects: fields, registry, primitives, backports, remotable methods."""
