"""kombu's Redis transport with one fix carried (celery 5.7.0, kombu 5.7.0, redis-py 8.1.0).

When the connection to Redis breaks, celery 5.7.0's consumer ``collect()``s it: kombu
detaches the transport (``Transport.client = None``) but the connection's channels live on,
the default channel (whose close had already failed on the dead socket) and the channel
of every task still running. Their next use (celery 5.7.0 now closes the collected
connection once more; a running task is acknowledged when it ends) rebuilds a Redis pool
through ``Channel._connparams``, which reads ``self.connection.client.hostname`` and raises
``AttributeError: 'NoneType' object has no attribute 'hostname'``. Only connection errors are
expected there, so the worker logs "Unrecoverable error" and exits, and stays down when Redis
returns. No setting avoids it (``broker_connection_retry`` and friends are read before that
path); celery 5.6.3 only collected.

Here a detached channel raises the connection error it stands for: the close is skipped, the
acknowledgement is logged as impossible (the message returns after the visibility timeout and
the job's queue token makes that delivery a no-op), and the consumer reconnects. Drop this
module once kombu treats a collected channel as closed.
"""

import redis
from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous=False):
        if self.connection.client is None:
            raise redis.ConnectionError("this broker connection was dropped after a failure")
        return super()._connparams(asynchronous)


class Transport(kombu_redis.Transport):
    Channel = Channel
