"""Creates an admin API key in a deployed stack: the first key, made outside the API.

    python -m ops.admin_key --stack activity-tracker-dev [--region eu-central-1] [--key KEY]

It finds the stack's TenantsTable through CloudFormation and writes the key's hash there,
with the same code the local stack uses for its bootstrap key. The key is printed once.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import boto3

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "layers" / "tracker"))

from tracker.adapters.tenants_table import tenant_store
from tracker.tenants import create_admin_key


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stack", required=True, help="CloudFormation stack name (see samconfig.toml)")
    parser.add_argument("--region", default=None, help="AWS region of the stack (default: your AWS config)")
    parser.add_argument("--key", default=None, help="Use this key instead of making one (at least 32 characters)")
    args = parser.parse_args(argv)
    if args.key is not None and len(args.key) < 32:
        parser.error("--key must be at least 32 characters")
    if args.region:
        os.environ["AWS_DEFAULT_REGION"] = args.region
    resource = boto3.client("cloudformation").describe_stack_resource(
        StackName=args.stack, LogicalResourceId="TenantsTable"
    )
    os.environ["TENANTS_TABLE"] = resource["StackResourceDetail"]["PhysicalResourceId"]
    created = create_admin_key(tenant_store(), api_key=args.key)
    print(f"Admin key {created.key_id} (shown once; keep it in a secret store):\n{created.api_key}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
