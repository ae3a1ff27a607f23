"""HTTP clients that connect only where a ``Reach`` allows (EWS and the Entra ID login through
requests, Graph through httpx).

Each resolves the host itself, checks every address, then connects to an address it checked:
the HTTP library never resolves the name a second time, so a DNS answer that changes between
check and connection (DNS rebinding) cannot slip through. TLS still verifies the certificate
against the host name, and the Host header keeps the name.
"""

from __future__ import annotations

from functools import cache

import httpcore
import httpx
import requests
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from .base import Reach
from .reach import addresses


class _PinnedConnection:
    """urllib3 connection that dials an address ``reach`` checked, not its host name."""

    reach: Reach = Reach()

    def _new_conn(self):
        host, error = self._dns_host, None
        for address in addresses(self.reach, host, self.port):
            # urllib3 dials _dns_host; it is put back before TLS and the Host header use it.
            self._dns_host = address
            try:
                return super()._new_conn()
            except (NewConnectionError, ConnectTimeoutError) as exc:
                error = exc
            finally:
                self._dns_host = host
        raise error


@cache
def _pool_classes(reach: Reach) -> dict[str, type]:
    """urllib3 takes connection classes, not instances: one set per Reach (a process has one
    or two), made once."""

    def pool(pool_class, connection_class):
        connection = type(
            connection_class.__name__, (_PinnedConnection, connection_class), {"reach": reach}
        )
        return type(pool_class.__name__, (pool_class,), {"ConnectionCls": connection})

    return {
        "http": pool(HTTPConnectionPool, HTTPConnection),
        "https": pool(HTTPSConnectionPool, HTTPSConnection),
    }


class ReachAdapter(requests.adapters.HTTPAdapter):
    """A requests adapter whose connections go through ``reach`` (a class attribute because
    exchangelib makes its adapters from the class)."""

    reach: Reach = Reach()

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _pool_classes(self.reach)


@cache
def adapter_class(base: type[ReachAdapter], reach: Reach) -> type[ReachAdapter]:
    return type(base.__name__, (base,), {"reach": reach})


def reach_session(reach: Reach) -> requests.Session:
    session = requests.Session()
    adapter = adapter_class(ReachAdapter, reach)()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class _ReachBackend(httpcore.SyncBackend):
    def __init__(self, reach: Reach):
        self.reach = reach

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        error = None
        for address in addresses(self.reach, host, port):
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        raise error


def reach_transport(reach: Reach, **kwargs) -> httpx.HTTPTransport:
    transport = httpx.HTTPTransport(**kwargs)
    # httpx takes no network backend, but its httpcore pool is built to use one.
    transport._pool._network_backend = _ReachBackend(reach)
    return transport
