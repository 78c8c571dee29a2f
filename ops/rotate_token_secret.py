"""Rotates the secret that signs access tokens in a deployed stack.

    python -m ops.rotate_token_secret --stack activity-tracker-dev [--region eu-central-1]

The new version (AWSCURRENT) signs from now on; the one before (AWSPREVIOUS) keeps verifying the
tokens it signed until they expire (15 minutes), and any older version stops verifying. The
functions see the new version within 5 minutes (their cache), at once for a token that names it.
"""

from __future__ import annotations

import argparse
import os
import secrets

import boto3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stack", required=True, help="CloudFormation stack name (see samconfig.toml)")
    parser.add_argument("--region", default=None, help="AWS region of the stack (default: your AWS config)")
    args = parser.parse_args(argv)
    if args.region:
        os.environ["AWS_DEFAULT_REGION"] = args.region
    secret = boto3.client("cloudformation").describe_stack_resource(
        StackName=args.stack, LogicalResourceId="TokenSigningSecret"
    )["StackResourceDetail"]["PhysicalResourceId"]
    version = boto3.client("secretsmanager").put_secret_value(SecretId=secret, SecretString=secrets.token_urlsafe(48))
    print(f"New signing version {version['VersionId']} of {secret}; tokens signed before stay valid until they expire.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
