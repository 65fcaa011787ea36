"""Messaging: transports by URL, targets, RPC clients and servers.

::

    transport = get_transport("memory://")          # or "rabbit://guest:guest@host:5672/"
    server = RPCServer(transport, Target(topic="conductor", server="host-1"), [Manager()])
    server.start()
    client = RPCClient(transport, Target(topic="conductor", version="1.0"))
    client.call(ctxt, "ping", value=1)

The wire format is oslo.messaging's rabbit-driver 2.0 envelope, so podium and
oslo.messaging services can call each other on one broker.
"""

from ._client import RPCClient
from ._dedup import Claim, DedupStore, MemoryDedupStore, RedisDedupStore, current_message_id
from ._memory import DeadLetter, MemoryBroker
from ._serializer import NoOpSerializer, Serializer
from ._server import Authorize, RPCDispatcher, RPCServer
from ._signing import KeyRing, MessageSigning, Sender, SigningKey, current_sender
from ._target import Target
from ._transport import Transport, TransportURL, get_transport

__all__ = [
    "Authorize",
    "Claim",
    "DeadLetter",
    "DedupStore",
    "KeyRing",
    "MemoryBroker",
    "MemoryDedupStore",
    "MessageSigning",
    "NoOpSerializer",
    "RPCClient",
    "RPCDispatcher",
    "RPCServer",
    "RedisDedupStore",
    "Sender",
    "Serializer",
    "SigningKey",
    "Target",
    "Transport",
    "TransportURL",
    "current_message_id",
    "current_sender",
    "get_transport",
]
