"""The embedded moto server, made safe for concurrent clients and fast on big tables.

Every patch of moto is in this module, the local stack's and the tests' (moto in-process, ``mock_aws``),
written for one moto version (``MOTO_VERSION``, checked at import: a new moto must be re-read before it
is trusted).

**How the emulator is serialised.** moto's backends are plain dicts and lists mutated without locks,
and its threaded server runs each request in its own thread: a TransactWriteItems copying a table while
another thread writes to it died with ``RuntimeError: dictionary changed size during iteration`` (a 500).
So the emulator answers one request at a time: ``SerialisedApp`` reads the request's body first (a slow
client never holds the lock) and then dispatches it to moto under one lock. Nothing is lost by it: moto
is pure Python, so under the GIL its requests never ran in parallel anyway.

**Why TransactWriteItems is patched.** moto deep-copies the whole table once per *item* of a transaction,
to roll back on failure: a 99-item commit on a table of 100,000 items cost minutes. ``_transact_write_items``
keeps a copy of the items the transaction touches instead, and puts them back on failure, which is the
same rollback (a transaction only changes the items it names).

**Why Query is patched.** For every query, moto sorts every item of the table and then keeps those of
the partition; ``_query`` hands moto the partition's items only (moto still filters, sorts and pages them
as before): on the base table, its dict; on a global secondary index, an index of the items by the
index's hash key, rebuilt after any DynamoDB write (the emulator is serialised, so a count of write
requests tells whether it is stale).

**For moto in-process (the integration tests).** ``transactions_without_table_copies`` applies the
TransactWriteItems patch while a block runs (not the Query one: its index is kept fresh by counting the
server's requests, which ``mock_aws`` has none of). ``moto_skips_answered_requests`` makes moto's
in-process stubber pass over a request a test's botocore hook has answered (marked by ``mark_answered``):
botocore emits ``before-send`` to every handler and only then takes the first answer, so moto would
otherwise apply a request the hook said was throttled.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import moto
from moto.core.botocore_stubber import BotocoreStubber
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models import __name__ as _backend_module_name
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.moto_server.threaded_moto_server import MotoRequestHandler  # type: ignore[attr-defined]
from moto.server import DomainDispatcherApplication, create_backend_app  # type: ignore[attr-defined]
from werkzeug.serving import ThreadedWSGIServer

MOTO_VERSION = "5.2.5"
if moto.__version__ != MOTO_VERSION:  # pragma: no cover - fails at once on a moto upgrade
    raise ImportError(
        f"local_stack.emulator patches moto {MOTO_VERSION}'s internals; moto {moto.__version__} is installed: "
        "re-read moto's transact_write_items, Table.query and BotocoreStubber and update this module"
    )

LISTEN_BACKLOG = 1024
logger = logging.getLogger(__name__)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class SerialisedApp:
    """A WSGI app that runs ``app`` for one request at a time, its body read before the lock is taken."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        length = environ.get("CONTENT_LENGTH") or ""
        stream = environ["wsgi.input"]
        if length.isdigit():
            body = stream.read(int(length))
        else:  # a chunked body (werkzeug ends the stream at its end), or none
            body = stream.read() if environ.get("wsgi.input_terminated") else b""
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        environ.pop("wsgi.input_terminated", None)

        def start_and_check(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            if status.startswith("5"):  # moto's own failure: a bug here or in moto, never the client's
                target = environ.get("HTTP_X_AMZ_TARGET") or environ.get("PATH_INFO")
                logger.error("The AWS emulation answered %s to %s", status, target)
            return start_response(status, headers, *args)

        with self.lock:
            _count_dynamodb_write(environ.get("HTTP_X_AMZ_TARGET", ""))
            return list(self.app(environ, start_and_check))


class _Server(ThreadedWSGIServer):
    request_queue_size = LISTEN_BACKLOG


class Emulator:
    """moto's server for every AWS service on ``http://{host}:{port}`` (``port=0``: a free one), serialised."""

    def __init__(self, host: str, port: int) -> None:
        patch_moto()
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request: the console has its own
        app = SerialisedApp(DomainDispatcherApplication(create_backend_app))
        self._server = _Server(host, port, app, handler=MotoRequestHandler)  # raises OSError when the port is taken
        self._thread = threading.Thread(target=self._server.serve_forever, name="aws-emulator", daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


# ---------------------------------------------------------------- moto patches

_patched = False
_original_transact = DynamoDBBackend.transact_write_items
_original_query = Table.query
_original_all_items = Table.all_items
_query_candidates = threading.local()
_backend_module: Any = __import__(_backend_module_name, fromlist=["copy"])


class _NoTableCopy:
    """Stands in for ``copy`` in moto's backend module: a Table is not copied (its rollback is ours)."""

    def deepcopy(self, value: Any, memo: Any = None) -> Any:
        return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)


def patch_moto() -> None:
    """Applies the patches once, for the life of the process (the local stack's, or a bench's)."""
    global _patched  # noqa: PLW0603 - one patch set per process
    if _patched:
        return
    _backend_module.copy = _NoTableCopy()
    DynamoDBBackend.transact_write_items = _transact_write_items  # type: ignore[method-assign]
    Table.query = _query  # type: ignore[method-assign]
    Table.all_items = _all_items  # type: ignore[method-assign]
    _patched = True


@contextlib.contextmanager
def transactions_without_table_copies() -> Iterator[None]:
    """The TransactWriteItems patch while the block runs, for moto in-process (``mock_aws``)."""
    saved = (_backend_module.copy, DynamoDBBackend.transact_write_items)
    _backend_module.copy = _NoTableCopy()
    DynamoDBBackend.transact_write_items = _transact_write_items  # type: ignore[method-assign]
    try:
        yield
    finally:
        _backend_module.copy, DynamoDBBackend.transact_write_items = saved  # type: ignore[method-assign]


_ANSWERED = "answered_before_moto"


def mark_answered(request: Any) -> Any:
    """Marks a request a botocore hook answers itself: moto in-process must not apply it."""
    setattr(request, _ANSWERED, True)
    return request


@contextlib.contextmanager
def moto_skips_answered_requests() -> Iterator[None]:
    """While the block runs, moto in-process answers only the requests no hook answered."""
    original = BotocoreStubber.__call__

    def call(self: BotocoreStubber, event_name: str, request: Any, **kwargs: Any) -> Any:
        return None if getattr(request, _ANSWERED, False) else original(self, event_name, request, **kwargs)

    BotocoreStubber.__call__ = call  # type: ignore[method-assign]
    try:
        yield
    finally:
        BotocoreStubber.__call__ = original  # type: ignore[method-assign]


_Snapshot = tuple[Table, DynamoType, DynamoType | None, Any]


def _touched_items(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> list[_Snapshot]:
    """(table, hash key, range key, a copy of the item or None) of every item the transaction names."""
    snapshots: list[_Snapshot] = []
    for entry in transact_items:
        for operation, arguments in entry.items():
            table = backend.tables.get(arguments.get("TableName"))
            key = arguments.get("Item") if operation == "Put" else arguments.get("Key")
            if table is None or not isinstance(key, dict) or table.hash_key_attr not in key:
                continue  # moto answers the error itself
            hash_key = DynamoType(key[table.hash_key_attr])
            range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr in key else None
            try:
                current = table.get_item(hash_key, range_key)
            except Exception as error:  # a bad key: moto refuses the transaction before any write
                logger.debug("No snapshot of %s in %s: %s", key, table.name, error)
                continue
            snapshots.append((table, hash_key, range_key, copy.deepcopy(current)))
    return snapshots


def _restore(snapshots: list[_Snapshot]) -> None:
    for table, hash_key, range_key, item in reversed(snapshots):
        if table.range_key_attr:
            partition = table.items[hash_key]
            if item is None:
                partition.pop(range_key, None)
            else:
                partition[range_key] = item
        elif item is None:
            table.items.pop(hash_key, None)
        else:
            table.items[hash_key] = item


def _transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    snapshots = _touched_items(self, transact_items)
    try:
        _original_transact(self, transact_items)
    except Exception:
        _restore(snapshots)
        raise


_DYNAMODB_READS = frozenset(
    {
        "Query",
        "GetItem",
        "BatchGetItem",
        "Scan",
        "TransactGetItems",
        "DescribeTable",
        "ListTables",
        "DescribeTimeToLive",
    }
)
_writes = 0
"""DynamoDB requests that may have changed an item, so far: an index built at another count is stale."""
_gsi_indexes: dict[tuple[int, str], tuple[int, dict[DynamoType, list[Any]]]] = {}


def _count_dynamodb_write(target: str) -> None:
    global _writes  # noqa: PLW0603 - one count for the (serialised) emulator
    service, _, operation = target.partition(".")
    if service.startswith("DynamoDB") and operation not in _DYNAMODB_READS:
        _writes += 1


def _by_index_hash(table: Table, attribute: str) -> dict[DynamoType, list[Any]]:
    """The table's items by their value of ``attribute`` (a GSI's hash key), rebuilt after any write."""
    key = (id(table), attribute)
    cached = _gsi_indexes.get(key)
    if cached is None or cached[0] != _writes:
        buckets: dict[DynamoType, list[Any]] = {}
        partitions: Any = table.items.values()
        stored = [item for part in partitions for item in part.values()] if table.range_key_attr else partitions
        for item in stored:
            value = item.attrs.get(attribute)
            if value is not None:
                buckets.setdefault(value, []).append(item)
        cached = (_writes, buckets)
        _gsi_indexes[key] = cached
    return cached[1]


def _query(self: Table, hash_key: DynamoType | None, *args: Any, **kwargs: Any) -> Any:
    index_name = args[6] if len(args) > 6 else kwargs.get("index_name")  # moto's 8th parameter
    conditions = kwargs.get("hash_key_conditions") or []
    if index_name is None:
        partition = self.items.get(hash_key) if hash_key is not None else None
        _query_candidates.items = list(partition.values()) if isinstance(partition, dict) else None
    elif len(conditions) == 1 and index_name in {index.name for index in self.global_indexes}:
        attribute, value = conditions[0]
        _query_candidates.items = list(_by_index_hash(self, attribute).get(value, []))
    else:  # a local index, or a key of several attributes: moto's own way
        _query_candidates.items = None
    try:
        return _original_query(self, hash_key, *args, **kwargs)
    finally:
        _query_candidates.items = None


def _all_items(self: Table) -> Any:
    candidates = getattr(_query_candidates, "items", None)
    return candidates if candidates is not None else _original_all_items(self)
