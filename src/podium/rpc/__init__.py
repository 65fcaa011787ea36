"""Messaging: transports by URL, targets, RPC clients and servers."""
