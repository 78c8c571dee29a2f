"""``python -m bench``: what the tracker costs, measured on this machine.

1. Cold import of each function's handler module in a fresh interpreter, against ``import boto3`` plus a
   DynamoDB client (goal: each handler at most 1.5x that reference).
2. Ingest throughput through the local stack (``python -m local_stack run``), sequential and concurrent.
3. The rollup's DynamoDB requests and items read per event, with and without 100,000 older events.
4. The statistics routes' DynamoDB requests and items read, with 10,000 and 200,000 events behind them.
5. The Python SDK and CLI: an NDJSON import through the CLI against the raw batch-ingest rate, and the
   SDK's exactly-once figure under injected faults (bench/sdk.py).

The report goes to stdout and, as JSON, to ``.bench/results.json``; nothing else is written in the repository
(bytecode goes to a directory under the system's temporary directory).
"""
