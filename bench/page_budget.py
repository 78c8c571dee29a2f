"""``python -m bench.page_budget``: what cutting pages of events at a byte budget costs.

A page of 1000 events assembled by ``tracker.event_reads.query_user_events`` over an in-memory store
(so the figures are the domain's own CPU, without DynamoDB): the time per page, the share spent
measuring items (``payload_bytes``), the reads of the store and the events in the page.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.common import load_template, median, use_layers

ROUNDS = 5
EVENTS = 1000


def main() -> None:
    use_layers(load_template())
    from tracker.event_reads import EventFilter, payload_bytes, query_user_events
    from tracker.interfaces import UserEventsQuery
    from tracker.records import EventRecord

    class ListStore:
        """One user's events in order; reads counted."""

        def __init__(self, records: list[EventRecord]) -> None:
            self.records, self.reads = records, 0

        def query_user_events(self, query: UserEventsQuery) -> tuple[list[EventRecord], bool]:
            self.reads += 1
            after = [r for r in self.records if query.after is None or r.occurred_key > query.after]
            return after[: query.limit], len(after) > query.limit

    start = datetime(2025, 10, 10, tzinfo=UTC)
    shapes: dict[str, dict[str, Any]] = {
        "60 B of metadata": {"device": "iPhone", "city": "Kyiv", "n": 1},
        "16 KB of ASCII metadata": {"blob": "x" * 16_000},
        "16 KB of emoji metadata": {"blob": "\U0001f600" * 4_000},
    }
    for label, metadata in shapes.items():
        records = [
            EventRecord(
                tenant_id="t",
                event_id=f"e{n:04d}",
                user_id="u",
                action="a",
                occurred_at=start + timedelta(seconds=n),
                received_at=start,
                metadata=metadata,
                fingerprint="f",
            )
            for n in range(EVENTS)
        ]
        timings, measuring = [], []
        for _ in range(ROUNDS):
            store = ListStore(records)
            began = time.perf_counter()
            page = query_user_events(store, "t", "u", EventFilter(None, None, None, False, EVENTS), None)  # type: ignore[arg-type]
            timings.append(time.perf_counter() - began)
            began = time.perf_counter()
            size = sum(payload_bytes(item) for item in page.items)
            measuring.append(time.perf_counter() - began)
        print(
            f"{label}: {median(timings) * 1000:.1f} ms per page (measuring {median(measuring) * 1000:.1f} ms), "
            f"{len(page.items)} events, {size / 1_048_576:.2f} MiB as the Lambda response holds them, "
            f"{store.reads} reads of the store"
        )


if __name__ == "__main__":
    main()
