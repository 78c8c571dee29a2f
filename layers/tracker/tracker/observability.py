"""The logger, metrics and tracer every function shares; kept apart from the HTTP resolver so
that the functions without routes (authorizer, rollup, erasure worker) do not import it."""

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
metrics = Metrics()
# Only boto3's calls are traced: patching every library Powertools knows imports them all.
tracer = Tracer(patch_modules=("botocore",))
