"""The state store: typed collections over a key/value backend, and the event bus.

SQLite (WAL) backs a single host; the etcd backend for swarm implements the same `Store`.
"""

from essaim.store.base import Change, Store, Transaction
from essaim.store.collection import Collection
from essaim.store.sqlite import SqliteStore

__all__ = ["Change", "Collection", "SqliteStore", "Store", "Transaction"]
