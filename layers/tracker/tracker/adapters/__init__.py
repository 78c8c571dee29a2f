"""The AWS boundary: the only modules that import boto3 or botocore (``make lint`` checks it).

One module per table or service, each implementing interfaces of ``tracker.interfaces``:
``clients`` (the botocore configuration and which failures are transient), ``dynamodb`` (the
DynamoDB client and batch writes), ``events_table``, ``received_events`` (the Events table's
``by_received_v2`` index, for the rollup), ``tenants_table``, ``aggregates_table`` (a store per job:
rollup, statistics, erasure), ``usage_plans`` (API Gateway) and ``lambda_invoke`` (the erasure worker).
"""
