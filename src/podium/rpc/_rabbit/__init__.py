"""``rabbit://`` and ``rabbits://``: RabbitMQ in oslo.messaging's queue layout.

Layout (the same names oslo.messaging uses, so both can share a broker):

- exchange ``openstack`` (topic, durable) with durable queues ``<topic>`` and
  ``<topic>.<server>`` bound by those routing keys;
- exchange ``<topic>_fanout`` (fanout, auto-delete) with one exclusive queue
  per server;
- replies: the caller's RabbitMQ direct reply-to address travels as
  ``_reply_q``; a server (podium or oslo) publishes the reply on the default
  exchange with that routing key. Nothing to declare, expire or lose.
- with ``?routing=exchange`` (accounts restricted per service, see
  :mod:`.routing`) nothing goes to the default exchange: requests through
  ``openstack``, replies through ``amq.topic`` to ``reply_<account>_<id>``
  queues bound there.

Threads: AMQP connections are not thread-safe, so each one is used by one
thread at a time. Callers check a connection out of a pool and drive its I/O
themselves while waiting for their reply (no hand-off between threads on
the hot path); a keeper thread services idle pooled connections so their
heartbeats never starve. Each server worker owns a connection and a thread
that receives a request, runs it, and replies and acknowledges in one write.

Modules: :mod:`.amqp` holds every contact with the AMQP client library
(pika); :mod:`.callers` the callers' connections and their pool;
:mod:`.servers` the server workers, :mod:`.incoming` what they received, and
:mod:`.listener` a server's set of them; :mod:`.routing` where messages are
published, and :mod:`.accounts` the permissions of restricted accounts;
:mod:`.driver` the driver that ties them to a URL.
"""

from .driver import TLS_OPTIONS, RabbitDriver, tls_context

__all__ = ["TLS_OPTIONS", "RabbitDriver", "tls_context"]
