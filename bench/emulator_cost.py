"""Section 5: the cost of a rollup-sized commit in the local stack's emulator, with moto as it comes and with
the local stack's patches (``local_stack.emulator``).

Each measurement runs in a fresh process (the patches are for the life of a process): a moto server on a
free port, the template's Aggregates table filled with ``items`` aggregate items (straight into moto's
backend, to keep the set-up short), then a TransactWriteItems of 99 ``ADD`` updates on existing aggregates
over HTTP, as the rollup commits a chunk, timed ``ROUNDS`` times (median). Unpatched moto deep-copies the
whole table once per item of the transaction, so it is measured at the smaller sizes only.
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
from typing import Any

from bench.common import load_template, log

TRANSACTION_ITEMS = 99
ROUNDS = 3
TABLE = "AggregatesTable"


def _commit_seconds(items: int, patched: bool) -> list[float]:
    """In a fresh process: the seconds of each 99-item commit on a table of ``items`` aggregates."""
    from bench.moto_speedups import moto_module, new_item
    from local_stack.aws import client, create_tables

    template = load_template()
    if patched:
        from local_stack.emulator import Emulator

        server: Any = Emulator("127.0.0.1", 0)
        server.start()
        endpoint = server.endpoint
    else:
        from moto.server import ThreadedMotoServer

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
    try:
        dynamodb = client("dynamodb", endpoint, template.region)
        create_tables(dynamodb, template)
        name = template.tables[TABLE].name
        account = moto_module("moto.core.models").DEFAULT_ACCOUNT_ID
        table = moto_module("moto.dynamodb.models").dynamodb_backends[account][template.region].get_table(name)
        for index in range(items):
            new_item(table, {"pk": {"S": f"T#{index % 500}"}, "sk": {"S": f"D#{index:07d}"}, "count": {"N": "1"}})
        timings = []
        for round_ in range(ROUNDS):
            writes = [
                {
                    "Update": {
                        "TableName": name,
                        "Key": {"pk": {"S": f"T#{index % 500}"}, "sk": {"S": f"D#{index:07d}"}},
                        "UpdateExpression": "ADD #count :one",
                        "ExpressionAttributeNames": {"#count": "count"},
                        "ExpressionAttributeValues": {":one": {"N": "1"}},
                    }
                }
                for index in range(round_, items, max(1, items // TRANSACTION_ITEMS))[:TRANSACTION_ITEMS]
            ]
            started = time.perf_counter()
            dynamodb.transact_write_items(TransactItems=writes)
            timings.append(time.perf_counter() - started)
        return timings
    finally:
        server.stop()


def measure(items: int, patched: bool) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        timings = pool.apply(_commit_seconds, (items, patched))
    return {
        "items": items,
        "patched": patched,
        "median_seconds": round(statistics.median(timings), 3),
        "rounds": [round(seconds, 3) for seconds in timings],
    }


def run(patched_sizes: list[int], unpatched_sizes: list[int]) -> dict[str, Any]:
    results = []
    for patched, sizes in ((False, unpatched_sizes), (True, patched_sizes)):
        for items in sizes:
            kind = "patched" if patched else "as is"
            log(f"emulator: a {TRANSACTION_ITEMS}-item commit on {items:,} aggregates, moto {kind}")
            results.append(measure(items, patched))
            log(f"emulator: {results[-1]['median_seconds']} s")
    return {"transaction_items": TRANSACTION_ITEMS, "commits": results}
