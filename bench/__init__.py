"""``python -m bench``: what the tracker costs, measured on this machine.

1. Cold import of each function's handler module in a fresh interpreter, against ``import boto3`` plus a
   DynamoDB client (goal: each handler at most 1.5x that reference).
2. Ingest throughput through the local stack (``python -m local_stack run``), sequential and concurrent.
3. The rollup's DynamoDB requests and items read per event, with and without 100,000 older events.
4. The statistics routes' DynamoDB requests and items read, with 10,000 and 200,000 events behind them.
5. What the tracking plan (off, flag, block) adds to a batch of 500 events, and a catalog search over
   5,000 event types.
7. Exporting one user with 100,000 events: the worker's time, requests and their price.
8. Live activity: 100 WebSocket clients and 500 events/s for 30 s through the local stack; every client must
   receive exactly its user's events; the broadcast lag p50/p99 (``bench/live.py``).
9. The Python SDK and CLI: an NDJSON import through the CLI against the raw batch-ingest rate, and the
   SDK's exactly-once figure under injected faults (bench/sdk.py).

The report goes to stdout and, as JSON, to ``.bench/results.json``; nothing else is written in the repository
(bytecode goes to a directory under the system's temporary directory).
"""
