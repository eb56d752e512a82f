"""The repository: keys, blobs, windows and the chunk index.

Layout in the store (what a storage peer holds):

    config                                    public: format version, repository id, window size
    keys/<id>                                 the master key, wrapped (see crypto)
    <domain>/<node>/<mount>/<ts>/index.json   a blob's manifest, written last
    <domain>/<node>/<mount>/<ts>/0/<n>/<m>    window m (n bytes each) of the blob's stream

A blob's stream is the concatenation of the envelopes of the objects
(data chunks and tree listings) that this snapshot stored first; objects
already in the repository are referenced, not stored again. `index.json`
holds the seed's public fields, the window size and each window's SHA-256,
the blob's public random salt, and `sealed`: an envelope (under the blob's
subkey) holding the object table (id, offset, length, type) and the
snapshot's metadata (root tree, tags, free-form metadata, source path).

The chunk index (id -> blob, offset, length, type) is the union of all
object tables. It is cached per blob under the cache directory (a blob is
immutable, so its table never goes stale) and rebuilt from the blobs for
any blob without a cache entry. Forgotten snapshots' blobs and prune's
packs count too, and records in windows that are gone are left out (see
chute.layout, chute.tombstone and chute.prune).
"""

from __future__ import annotations

import base64
import hashlib
import json
import mmap
import os
import queue
import struct
import threading
import uuid
from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zstandard

from chute import compression, directio
from chute.chunking import Chunker
from chute.compression import ZSTD_LEVEL
from chute.crypto import (
    F_ZSTD,
    SALT_SIZE,
    T_DATA,
    T_INDEX,
    T_TREE,
    BlobCipher,
    IdHasher,
    MasterKey,
    Secret,
    unwrap_key,
    wrap_key,
)
from chute.errors import (
    BlobConflict,
    IntegrityError,
    NoRepository,
    NotFound,
    RepositoryExists,
    StorageError,
    WrongKey,
)
from chute.ids import ChunkId, SnapshotName
from chute.layout import BlobFiles, Layout, scan
from chute.store.base import BlobStore

FORMAT_VERSION = 1
DEFAULT_WINDOW = 8 << 20
RECORD = struct.Struct(">32sQIB")
COMPRESS_MIN_GAIN = 0.97  # keep zstd output only when it saves at least 3%


@dataclass(frozen=True)
class Location:
    """Where an object lives: its blob, offset and length in the blob's stream."""

    blob: str
    offset: int
    length: int
    otype: int


class ChunkIndex:
    """id -> Location for every object in the repository (thread-safe claims)."""

    def __init__(self) -> None:
        self._map: dict[bytes, tuple[int, int, int, int]] = {}
        self._blobs: list[str] = []
        self._blob_ids: dict[str, int] = {}
        self._claimed: set[bytes] = set()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._map)

    def __contains__(self, oid: ChunkId) -> bool:
        return oid.raw in self._map

    def has_all(self, hex_ids: list[str]) -> bool:
        """Tell whether every one of these objects (hex ids) is stored and present."""
        return all(bytes.fromhex(h) in self._map for h in hex_ids)

    def add_table(self, blob: str, table: bytes) -> None:
        """Add one blob's packed object table."""
        number = self._blob_ids.setdefault(blob, len(self._blobs))
        if number == len(self._blobs):
            self._blobs.append(blob)
        for raw, offset, length, otype in RECORD.iter_unpack(table):
            self._map.setdefault(raw, (number, offset, length, otype))

    def get(self, oid: ChunkId) -> Location:
        """Return where an object is; NotFound if the repository lacks it."""
        try:
            number, offset, length, otype = self._map[oid.raw]
        except KeyError:
            raise NotFound(f"object {oid.hex[:16]} is not in the repository") from None
        return Location(self._blobs[number], offset, length, otype)

    def claim(self, oid: ChunkId) -> bool:
        """Return True exactly once per id not yet stored: the caller stores it."""
        if oid.raw in self._map:
            return False
        with self._lock:
            if oid.raw in self._claimed:
                return False
            self._claimed.add(oid.raw)
            return True


def pack_table(records: list[tuple[bytes, int, int, int]]) -> bytes:
    """Pack (id, offset, length, type) records."""
    return b"".join(RECORD.pack(*r) for r in records)


@dataclass(frozen=True)
class BlobIndex:
    """A blob's `index.json`: the public fields and the opened sealed part."""

    name: SnapshotName
    public: dict[str, Any]
    meta: dict[str, Any]
    table: bytes

    @property
    def root(self) -> ChunkId:
        return ChunkId.from_hex(self.meta["tree"])


class WindowCache:
    """The last few whole windows read (thread-safe, least recently used first out).

    It serves small scattered reads (tree listings, envelope headers); a
    restore reads its data in spans (chute.prefetch), so two slots suffice
    and keep the memory small.
    """

    SLOTS = 2

    def __init__(self) -> None:
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, name: str) -> bytes | None:
        with self._lock:
            data = self._items.get(name)
            if data is not None:
                self._items.move_to_end(name)
            return data

    def put(self, name: str, data: bytes) -> None:
        with self._lock:
            self._items[name] = data
            while len(self._items) > self.SLOTS:
                self._items.popitem(last=False)


class Repository:
    """An opened repository: a store plus the master key."""

    def __init__(self, store: BlobStore, key: MasterKey, config: dict[str, Any], cache: Path):
        self.store = store
        self.key = key
        self.config = config
        self.hasher: IdHasher = key.hasher()
        self.chunker = Chunker(key.chunker_seed)
        self.window = int(config.get("window", DEFAULT_WINDOW))
        self.cache = cache
        self._index: ChunkIndex | None = None
        self._index_lock = threading.Lock()
        self._windows: dict[str, int] = {}
        self._window_cache = WindowCache()
        self._ciphers: dict[str, BlobCipher] = {}
        self._local = threading.local()  # per-thread zstd decompressor

    # --- creation and opening -------------------------------------------

    @staticmethod
    def init(store: BlobStore, secret: Secret, window: int = DEFAULT_WINDOW) -> str:
        """Create a repository in an empty store; return its id."""
        if store.exists("config"):
            raise RepositoryExists(f"a repository already exists at {store.location}")
        master = MasterKey.generate()
        repo_id = uuid.uuid4().hex
        config = {"version": FORMAT_VERSION, "id": repo_id, "window": window}
        store.put(f"keys/{uuid.uuid4().hex[:16]}", wrap_key(master, secret))
        store.put("config", json.dumps(config, indent=1).encode() + b"\n")
        return repo_id

    @staticmethod
    def read_config(store: BlobStore) -> dict[str, Any]:
        """Read the public config; NoRepository if there is none."""
        try:
            config = json.loads(store.get("config"))
        except NotFound:
            raise NoRepository(f"no repository at {store.location} (run `chute init`)") from None
        except ValueError as exc:
            raise IntegrityError("the repository config is damaged") from exc
        if config.get("version") != FORMAT_VERSION:
            raise IntegrityError(f"unsupported repository version {config.get('version')}")
        return dict(config)

    @classmethod
    def open(cls, store: BlobStore, secret: Secret, cache_root: Path) -> Repository:
        """Open a repository with a passphrase or key file."""
        config = cls.read_config(store)
        master = cls._unlock(store, secret)
        return cls(store, master, config, cache_root / str(config["id"]))

    @staticmethod
    def _unlock(store: BlobStore, secret: Secret) -> MasterKey:
        names = list(store.list("keys"))
        if not names:
            raise IntegrityError("the repository holds no key")
        for name in names:
            try:
                return unwrap_key(store.get(name), secret)
            except WrongKey:
                continue
        raise WrongKey("wrong key: neither the passphrase nor the key file opens this repository")

    def add_key(self, secret: Secret) -> str:
        """Store one more wrapped copy of the master key; return its name."""
        name = f"keys/{uuid.uuid4().hex[:16]}"
        self.store.put(name, wrap_key(self.key, secret))
        return name

    @property
    def repo_id(self) -> str:
        return str(self.config["id"])

    def with_store(self, store: BlobStore) -> Repository:
        """Return this repository opened over another store (e.g. one guarded by a lock)."""
        return Repository(store, self.key, self.config, self.cache)

    # --- snapshots ------------------------------------------------------

    def layout(self) -> Layout:
        """List the store once, grouped by blob (see chute.layout)."""
        return scan(self.store.list())

    def snapshots(self) -> list[SnapshotName]:
        """Return the names of all live snapshots (committed, not forgotten), oldest first."""
        return self.layout().snapshots()

    def claim_name(self, name: SnapshotName) -> bool:
        """Reserve an unused blob name for a new snapshot; False if it is taken.

        The claim holds random bytes, so of two puts racing for one name the
        store lets exactly one create it (the other gets a BlobConflict).
        """
        if next(iter(self.store.list(name.path)), None) is not None:
            return False
        try:
            self.store.put(f"{name.path}/claim", uuid.uuid4().hex.encode())
        except BlobConflict:
            return False
        return True

    def read_index(self, name: SnapshotName) -> BlobIndex:
        """Read and open a blob's index.json."""
        public, meta, table = self.open_blob_index(name.path)
        return BlobIndex(name, public, meta, table)

    def open_blob_index(self, path: str) -> tuple[dict[str, Any], dict[str, Any], bytes]:
        """Read and open the index.json of a snapshot's blob or a pack: (public, meta, table)."""
        try:
            public = json.loads(self.store.get(f"{path}/index.json"))
            salt = base64.b64decode(public["salt"])
            sealed = base64.b64decode(public["sealed"])
        except NotFound:
            raise NotFound(f"no snapshot {path}") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"index of {path} is malformed") from exc
        plain, _ = self.key.blob_cipher(salt).open(sealed, T_INDEX, path.encode())
        try:
            body = zstandard.ZstdDecompressor().decompress(plain)
            (meta_len,) = struct.unpack_from(">I", body)
            meta = json.loads(body[4 : 4 + meta_len])
        except (zstandard.ZstdError, struct.error, ValueError) as exc:
            raise IntegrityError(f"index of {path} is damaged") from exc
        table = body[4 + meta_len :]
        if len(table) % RECORD.size:
            raise IntegrityError(f"object table of {path} is damaged")
        return public, meta, table

    # --- the chunk index ------------------------------------------------

    def index(self) -> ChunkIndex:
        """Return the chunk index, loading cached tables and reading new blobs."""
        with self._index_lock:
            if self._index is None:
                self._index = self._load_index()
            return self._index

    def reset_index(self) -> None:
        """Drop the loaded chunk index (after prune moved or deleted objects)."""
        with self._index_lock:
            self._index = None

    def _table_cache(self, path: str) -> Path:
        digest = hashlib.sha256(path.encode()).hexdigest()[:40]
        return self.cache / "tables" / digest

    def _load_index(self) -> ChunkIndex:
        # Every blob with an index.json counts, forgotten ones and prune's packs too: later
        # snapshots may use their objects. Records in windows that are gone are left out.
        index = ChunkIndex()
        for blob in self.layout().indexed():
            try:
                table = self.blob_table(blob.path)
            except (IntegrityError, NotFound):
                continue  # a damaged or vanished index: its objects are missing (check says so)
            index.add_table(blob.path, present_records(table, blob))
        return index

    def blob_table(self, path: str) -> bytes:
        """Return a blob's (or pack's) object table; cached, as a blob never changes."""
        try:
            return self._table_cache(path).read_bytes()
        except FileNotFoundError:
            table = self.open_blob_index(path)[2]
            self._cache_table(path, table)
            return table

    def _cache_table(self, blob: str, table: bytes) -> None:
        path = self._table_cache(blob)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(table)
        os.replace(tmp, path)

    def drop_cached_table(self, blob: str) -> None:
        """Forget the cached table of a blob that prune deleted."""
        self._table_cache(blob).unlink(missing_ok=True)

    def remember_table(self, name: SnapshotName, table: bytes) -> None:
        """Cache a committed blob's object table (and add it to a loaded index)."""
        self._cache_table(name.path, table)
        if self._index is not None:
            self._index.add_table(name.path, table)

    # --- reading objects ------------------------------------------------

    def advise_stream(self, blob: str, offset: int, length: int, window: int) -> None:
        """Hint that a range of a blob's stream will be read soon (see Store.advise)."""
        for name, _, inner, take in _window_parts(blob, offset, length, window):
            self.store.advise(name, inner, take)

    def read_stream(
        self, blob: str, offset: int, length: int, window: int, cached: bool = True
    ) -> bytes:
        """Read `length` bytes at `offset` of a blob's stream, across windows.

        Small reads are served from a few cached whole windows (unless not
        `cached`): scattered small objects such as tree listings often share
        a window, so a run of them costs one window read instead of one each.
        """
        parts = []
        for name, number, inner, take in _window_parts(blob, offset, length, window):
            if cached and take <= window // 64:
                whole = self._window_cache.get(name)
                if whole is None:
                    whole = self.store.get(name)
                    self._window_cache.put(name, whole)
                part = whole[inner : inner + take]
            else:
                part = self.store.get(name, inner, take)
            if len(part) != take:
                raise IntegrityError(f"window {number} of {blob} is truncated")
            parts.append(part)
        return b"".join(parts)

    def window_of(self, blob: str) -> int:
        """Return the window size a blob was written with."""
        if blob not in self._windows:
            self._read_public(blob)
        return self._windows[blob]

    def _read_public(self, blob: str) -> None:
        try:
            public = json.loads(self.store.get(f"{blob}/index.json"))
            self._windows[blob] = int(public["window"])
            self._ciphers[blob] = self.key.blob_cipher(base64.b64decode(public["salt"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"index of {blob} is malformed") from exc

    def read_object(self, oid: ChunkId, otype: int) -> bytes:
        """Fetch, authenticate, decompress and verify one object."""
        loc = self.index().get(oid)
        if loc.otype != otype:
            raise IntegrityError(f"object {oid.hex[:16]} has the wrong type")
        envelope = self.read_stream(loc.blob, loc.offset, loc.length, self.window_of(loc.blob))
        return self.open_object(oid, loc, envelope)

    def open_object(self, oid: ChunkId, loc: Location, envelope: bytes | memoryview) -> bytes:
        """Authenticate, decompress and verify an object read from `loc`."""
        plain, flags = self._cipher_of(loc.blob).open(envelope, loc.otype, oid.raw)
        if flags & F_ZSTD:
            plain = self._decompressor().decompress(plain)
        check = self.hasher.chunk_id(plain) if loc.otype == T_DATA else self.hasher.tree_id(plain)
        if check != oid:
            raise IntegrityError(f"object {oid.hex[:16]} does not match its id")
        return plain

    def _decompressor(self) -> zstandard.ZstdDecompressor:
        # One per thread: a decompressor is not thread-safe, and making one per
        # object cost as much as decompressing a small one.
        dctx = getattr(self._local, "dctx", None)
        if dctx is None:
            dctx = self._local.dctx = zstandard.ZstdDecompressor()
        return dctx

    def _cipher_of(self, blob: str) -> BlobCipher:
        if blob not in self._ciphers:
            self._read_public(blob)
        return self._ciphers[blob]

    def read_tree(self, oid: ChunkId) -> bytes:
        """Return a tree listing's canonical bytes."""
        return self.read_object(oid, T_TREE)


def pack(
    compressor: zstandard.ZstdCompressor | None, plain: bytes | memoryview
) -> tuple[bytes | memoryview, int]:
    """Return an object's stored form and flags: zstd where it saves enough, else as is.

    No compressor (`--compression off`): as is.
    """
    if compressor is None:
        return plain, 0
    packed = compressor.compress(plain)
    if len(packed) < len(plain) * COMPRESS_MIN_GAIN:
        return packed, F_ZSTD
    return plain, 0


class BlobWriter:
    """Append sealed objects to a new blob's stream; commit with index.json.

    Workers seal objects in parallel; `append` only records offsets and
    queues the pieces. Full windows are joined once and handed to a writer
    thread, which hashes them and writes them (temp + fsync + link) while
    the workers go on; a bounded queue keeps memory flat.

    Tree listings are held back and enter the stream together, `TREE_RUN`
    bytes at a time (and the rest at commit). A put stores each listing as
    soon as its directory is done: one by one among the data, a snapshot's
    listings lay in a third of its windows (26 of 76 on `mixed`), all of
    which the next put (reading its parent's listings) and every restore
    then read whole.
    """

    QUEUE_WINDOWS = 2
    TREE_RUN = 4 << 20

    def __init__(self, repo: Repository, name: SnapshotName, level: int = ZSTD_LEVEL) -> None:
        self.repo = repo
        self.name = name
        self.level = level  # zstd's, for the objects sealed here (compression.OFF: none)
        self.salt = os.urandom(SALT_SIZE)
        self.cipher: BlobCipher = repo.key.blob_cipher(self.salt)
        self.window = repo.window
        self._pieces: deque[bytes | memoryview] = deque()
        self._pending = 0
        self._offset = 0
        self._number = 0
        self._window_hashes: list[str] = []
        self._checksum = hashlib.sha256()
        self._records: list[tuple[bytes, int, int, int]] = []
        self._trees: list[tuple[ChunkId, tuple[bytes, bytes]]] = []
        self._tree_bytes = 0
        self._lock = threading.Lock()
        self._compressor = threading.local()
        self._queue: queue.Queue[tuple[int, mmap.mmap, int] | None] = queue.Queue(
            self.QUEUE_WINDOWS
        )
        # Windows are built in a few reused page-aligned buffers, which a local store
        # writes past the page cache (chute.directio): a cold first backup of `mixed`
        # spent a tenth of its CPU time copying its blob into the cache.
        self._buffers = directio.Buffers(self.window)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._write_windows, name="chute-window")
        self._thread.start()

    def seal(
        self, otype: int, oid: ChunkId, plain: bytes | memoryview, compress: bool
    ) -> tuple[bytes, bytes]:
        """Compress (where it pays) and encrypt one object; thread-safe."""
        data, flags = pack(self._zstd(), plain) if compress else (plain, 0)
        return self.cipher.seal_parts(otype, oid.raw, data, flags)

    def _zstd(self) -> zstandard.ZstdCompressor | None:
        if not hasattr(self._compressor, "c"):
            self._compressor.c = compression.compressor(self.level)
        comp: zstandard.ZstdCompressor | None = self._compressor.c
        return comp

    def append(self, otype: int, oid: ChunkId, envelope: tuple[bytes, bytes]) -> None:
        """Add a sealed object to the stream (a listing: to the next run of them)."""
        with self._lock:
            if self._error is not None:
                raise self._error
            if otype != T_TREE:
                self._add(otype, oid, envelope)
                return
            self._trees.append((oid, envelope))
            self._tree_bytes += len(envelope[0]) + len(envelope[1])
            if self._tree_bytes >= self.TREE_RUN:
                self._add_trees()

    def _add(self, otype: int, oid: ChunkId, envelope: tuple[bytes, bytes]) -> None:
        """Place an object at the end of the stream; queue the windows it fills."""
        size = len(envelope[0]) + len(envelope[1])
        self._records.append((oid.raw, self._offset, size, otype))
        self._offset += size
        self._pieces.extend(envelope)
        self._pending += size
        while self._pending >= self.window:
            self._cut(self.window)

    def _add_trees(self) -> None:
        for oid, envelope in self._trees:
            self._add(T_TREE, oid, envelope)
        self._trees, self._tree_bytes = [], 0

    def _cut(self, size: int) -> None:
        """Join the first `size` pending bytes into a window and queue it."""
        taken: list[bytes | memoryview] = []
        need = size
        while need:
            piece = self._pieces.popleft()
            if len(piece) > need:
                view = memoryview(piece)
                taken.append(view[:need])
                self._pieces.appendleft(view[need:])
                need = 0
            else:
                taken.append(piece)
                need -= len(piece)
        self._pending -= size
        buffer = self._buffers.take()
        at = 0
        for piece in taken:
            buffer[at : at + len(piece)] = piece
            at += len(piece)
        self._queue.put((self._number, buffer, size))
        self._number += 1

    def _write_windows(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is not None:
                continue  # drain: the error is reported by append or commit
            number, buffer, size = item
            try:
                with memoryview(buffer)[:size] as data:
                    self._checksum.update(data)
                    self._window_hashes.append(hashlib.sha256(data).hexdigest())
                    self.repo.store.put(f"{self.name.path}/0/{self.window}/{number}", data)
            except BaseException as exc:  # handed to the appending thread
                self._error = exc
            self._buffers.give(buffer)

    def _finish_windows(self) -> None:
        self._queue.put(None)
        self._thread.join()
        self._buffers.close()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        """Stop the writer thread after a failure (the blob stays incomplete)."""
        if self._thread.is_alive():
            self._error = self._error or StorageError("put aborted")
            self._queue.put(None)
            self._thread.join()
        self._buffers.close()

    @property
    def stored_bytes(self) -> int:
        return self._offset + self._tree_bytes

    def commit(self, meta: dict[str, Any], parent: SnapshotName | None) -> BlobIndex:
        """Write the last window, then index.json: the blob is complete."""
        with self._lock:
            self._add_trees()
            if self._pending:
                self._cut(self._pending)
            self._finish_windows()
            table = pack_table(self._records)
            meta_bytes = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
            body = struct.pack(">I", len(meta_bytes)) + meta_bytes + table
            # Bound to the blob's name: an index copied under another name fails to open.
            packed = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(body)
            sealed = self.cipher.seal_index(packed, self.name.path.encode())
            public = {
                "version": FORMAT_VERSION,
                "domain": self.name.domain,
                "node": self.name.node,
                "mount": self.name.mount,
                "timestamp": self.name.timestamp,
                "parent": parent.path if parent else None,
                "shards": self._number,
                "size": self._offset,
                "checksum": self._checksum.hexdigest(),
                "encrypted": True,
                "window": self.window,
                "windows": self._window_hashes,
                "salt": base64.b64encode(self.salt).decode(),
                "sealed": base64.b64encode(sealed).decode(),
            }
            doc = json.dumps(public, indent=1).encode() + b"\n"
            self.repo.store.put(f"{self.name.path}/index.json", doc)
            self.repo.remember_table(self.name, table)
            return BlobIndex(self.name, public, meta, table)


def present_records(table: bytes, blob: BlobFiles) -> bytes:
    """Keep the records of a blob's table whose bytes lie wholly in windows that exist."""
    if not table:
        return table
    window = blob.window_size
    if window is None:
        return b""  # no window left at all
    _, last_offset, last_length, _ = RECORD.unpack_from(table, len(table) - RECORD.size)
    expected = -(-(last_offset + last_length) // window)  # the stream is in offset order
    if len(blob.windows) >= expected and all(m in blob.windows for m in range(expected)):
        return table
    kept = [
        RECORD.pack(*record)
        for record in RECORD.iter_unpack(table)
        if all(
            m in blob.windows
            for m in range(record[1] // window, (record[1] + record[2] - 1) // window + 1)
        )
    ]
    return b"".join(kept)


def _window_parts(
    blob: str, offset: int, length: int, window: int
) -> Iterator[tuple[str, int, int, int]]:
    """Split a range of a blob's stream by window: (name, number, offset inside, length)."""
    end = offset + length
    while offset < end:
        number, inner = divmod(offset, window)
        take = min(end - offset, window - inner)
        yield f"{blob}/0/{window}/{number}", number, inner, take
        offset += take
