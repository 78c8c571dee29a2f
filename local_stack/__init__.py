"""The local development stack: the SAM template run without Docker and without an AWS account.

Development tooling only, never deployed. Everything about the application (tables, routes, schedules,
environment, layers) is read from ``template.yaml``:

- ``template``: the template with CloudFormation intrinsics resolved for a local run.
- ``aws``: the embedded AWS emulation (moto server), the template's tables and usage plan.
- ``lambdas``: the Lambda runtime emulation (worker processes per function, or in-process).
- ``gateway``: the API Gateway REST API emulation (routes, Lambda authorizer, gateway responses).
- ``invoke_api``: the Lambda Invoke API, as ``sam local start-lambda`` serves it.
- ``schedules``: the functions' ``Schedule``/``ScheduleV2`` events, run on their rate.
- ``httpserver``: the HTTP plumbing the gateway and the Invoke API share.
- ``openapi``: the merged OpenAPI document of the functions (``docs/openapi.json``).
- ``build_check``: compiled extensions of a ``sam build`` against the functions' architectures.
- ``python -m local_stack run|invoke|openapi|check-build``: the command line.

Keep this module free of imports: every worker process the Lambda emulation spawns imports it.
"""
