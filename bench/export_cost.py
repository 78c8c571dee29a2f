"""Section 5: exporting a user with 100,000 events: time, requests and what they cost.

In-process on moto (``mock_aws``, the fast path of ``bench.moto_speedups``) with the template's tables,
secret and bucket. The user's events (the items ingest makes, with the bench's usual metadata) and a
profile are written straight into moto; an export record is made as the exports function makes it;
then ``functions/export_worker/app.py``'s ``lambda_handler`` runs with the template's environment and a
Lambda context of the function's timeout, invoked again for as long as it says ``resume``. DynamoDB
requests (and read units) are counted on the product's client with botocore hooks, S3 requests on
the product's S3 client. The file is read back and checked: the profile line, then every event in
order.

Prices (us-east-1, on-demand, 2025): DynamoDB $0.125 per million read request units and $0.625 per
million write request units, S3 $0.005 per 1,000 PUT/POST and $0.0004 per 1,000 GET, Lambda
$0.0000166667 per GB-second (x86) and $0.20 per million requests. The Lambda time is the one measured
here on moto: an upper bound, as DynamoDB answers a 1 MB page in milliseconds.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from bench.common import function, load_function_module, log
from bench.data import METADATA
from bench.dynamo import Recorder, mocked_aws

if TYPE_CHECKING:
    from local_stack.template import Template

TENANT = "ten_benchexport000001"
USER = "user-exported"
RRU_DOLLARS = 0.125 / 1_000_000
WRU_DOLLARS = 0.625 / 1_000_000
S3_PUT_DOLLARS = 0.005 / 1_000
S3_GET_DOLLARS = 0.0004 / 1_000
LAMBDA_GB_SECOND_DOLLARS = 0.0000166667
LAMBDA_REQUEST_DOLLARS = 0.20 / 1_000_000


def _events(count: int, now: datetime) -> list[Any]:
    from tracker.events import prepare_event

    start = now - timedelta(days=365)
    step = timedelta(days=365) / count
    return [
        prepare_event(
            {
                "event_id": f"evt-{index:07d}",
                "user_id": USER,
                "action": ("login", "view", "buy", "logout")[index % 4],
                "occurred_at": (start + step * index).isoformat(),
                "metadata": {**METADATA, "n": index},
            },
            TENANT,
            now,
        )
        for index in range(count)
    ]


def run(template: Template, events: int) -> dict[str, Any]:
    spec = function(template, "ExportWorkerFunction")
    with mocked_aws(template, spec.environment) as moto:
        import boto3

        from local_stack.resources import create_resources
        from tracker.adapters.events_table import event_to_item
        from tracker.adapters.exports_bucket import s3_client
        from tracker.adapters.profiles_table import DynamoProfileStore
        from tracker.profile_models import ExportRecord, ProfileRecord

        create_resources(boto3.client, template)
        now = datetime.now(UTC)
        log(f"export: writing {events:,} events of one user")
        records = _events(events, now)
        moto.direct.put_items(moto.tables["EventsTable"], (event_to_item(record) for record in records))
        store = DynamoProfileStore(moto.client, moto.tables["ProfilesTable"])
        fields = {"email": "bench@example.com", "first_name": "Bench", "traits": {"plan": "pro"}}
        store.save_profile(
            ProfileRecord(tenant_id=TENANT, user_id=USER, fields=fields, created_at=now, updated_at=now), None, None
        )
        export = ExportRecord(
            tenant_id=TENANT,
            export_id="exp_bench",
            user_id=USER,
            status="pending",
            events=0,
            created_at=now,
            updated_at=now,
        )
        store.create_export(export)

        module: Any = load_function_module(spec, "bench_export_worker")
        started_again: list[Any] = []
        module.start_export_worker = started_again.append
        from local_stack.lambdas import LambdaContext, WorkerSetup

        setup = WorkerSetup.of(spec, dict(spec.environment))
        s3_requests: Counter[str] = Counter()
        s3 = s3_client()
        s3.meta.events.register("before-call.s3", lambda model, **_: s3_requests.update([model.name]))
        invocations, outcomes, seconds = 0, list[str](), list[float]()
        log("export: running the worker")
        with Recorder(moto.client) as recorder:
            while not outcomes or outcomes[-1] == "resume":
                invocations += 1
                context = LambdaContext(setup, str(uuid.uuid4()), "bench")
                began = time.perf_counter()
                answer = module.lambda_handler({"tenant_id": TENANT, "export_id": "exp_bench"}, context)
                seconds.append(time.perf_counter() - began)
                outcomes.append(answer["outcome"])
        body = s3.get_object(Bucket=spec.environment["EXPORTS_BUCKET"], Key=export.file_key)["Body"].read()
        lines = body.decode().splitlines()
        first = json.loads(lines[0]) if lines else {}
        ids = [json.loads(line)["event_id"] for line in lines[1:]]
        complete = first.get("type") == "profile" and ids == [record.event_id for record in records]
        counts = recorder.counts.as_dict()
        memory_gb = spec.memory / 1024
        total_seconds = sum(seconds)
        s3_puts = sum(s3_requests[name] for name in ("PutObject", "CreateMultipartUpload", "UploadPart"))
        s3_puts += s3_requests["CompleteMultipartUpload"]
        dollars = {
            "dynamodb_reads": counts["read_request_units"] * RRU_DOLLARS,
            "dynamodb_writes": counts["write_items"] * WRU_DOLLARS,
            "s3_requests": s3_puts * S3_PUT_DOLLARS + S3_GET_DOLLARS,
            "lambda_upper_bound": total_seconds * memory_gb * LAMBDA_GB_SECOND_DOLLARS
            + invocations * LAMBDA_REQUEST_DOLLARS,
        }
        return {
            "events": events,
            "file_bytes": len(body),
            "file_lines": len(lines),
            "complete_and_in_order": complete,
            "invocations": invocations,
            "outcomes": outcomes,
            "worker_seconds": [round(value, 2) for value in seconds],
            "worker_seconds_total": round(total_seconds, 1),
            "memory_mb": spec.memory,
            "part_bytes": int(spec.environment.get("EXPORT_PART_BYTES", 8 * 1024 * 1024)),
            "dynamodb": counts,
            "s3_requests": dict(s3_requests),
            "dollars": {name: round(value, 6) for name, value in dollars.items()},
            "dollars_total": round(sum(dollars.values()), 6),
        }
