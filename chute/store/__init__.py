"""Opaque blob storage.

A store keeps named byte strings (`a/b/c`), nothing more: it never imports
crypto or the graph, because all it ever sees is ciphertext and the public
fields a storage peer may read. Every backend passes the one contract suite
in `tests/store_contract.py`.
"""

from chute.store.base import BlobStore, check_name, open_store

__all__ = ["BlobStore", "check_name", "open_store"]
