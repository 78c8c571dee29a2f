"""``python -m local_stack run | invoke | openapi``: the local stack's command line.

- ``run [--verbose]``: the API (``PORT``, 3000), the Lambda Invoke API (``LAMBDA_PORT``, 3001), the AWS
  emulation (``AWS_PORT``, 5000), the WebSocket API (``WS_PORT``, 3002) and its management API
  (``WS_MANAGEMENT_PORT``, 3003) on 127.0.0.1, with the template's tables, an admin key (``ADMIN_API_KEY``
  or a new one) and the schedules, until Ctrl-C or SIGTERM. It prints one line per request; the
  functions' logs go to a file per function (and to the terminal with ``--verbose`` or
  ``LOG_LEVEL=DEBUG``); their EMF metrics go to the emulator's CloudWatch.
- ``invoke FunctionLogicalId -e events/x.json``: like ``sam local invoke``, one run in this process; the
  result JSON on stdout, logs on stderr; exit status 1 on a function error. Uses ``--endpoint`` or
  ``AWS_ENDPOINT_URL`` when given, otherwise an embedded moto server with the tables, just for the call.
- ``metrics [--hours 1]``: the last hour of a running stack's metrics (its CloudWatch on ``AWS_PORT``):
  requests and errors per route, events accepted/duplicate/rejected, rollup runs and lag.
- ``openapi [--check]``: writes ``docs/openapi.json`` (or checks that it is up to date).
- ``check-build [.aws-sam/build]``: every compiled extension of a ``sam build`` fits the architectures of
  the functions that use it.

For ``run`` and ``invoke``, a variable of this environment (or of the AWS emulation) that a function's
template environment declares replaces the template's value, as ``sam local --env-vars`` does:
``FOO=1 make run``.

Top-level imports stay light: every Lambda worker process (``spawn``) imports this module again.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from contextlib import ExitStack
from multiprocessing import resource_tracker
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from local_stack.httpserver import HttpRequest, HttpResponse
    from local_stack.template import Template

HOST = "127.0.0.1"
ADMIN_TABLE = "TenantsTable"
STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})


def _port(variable: str, default: int) -> int:
    value = os.environ.get(variable, str(default))
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise SystemExit(f"{variable}={value!r} is not a port number")
    return int(value)


def _template(args: argparse.Namespace) -> Template:
    from local_stack.template import TemplateError, load_template  # noqa: PLC0415

    overrides = {}
    for item in args.parameter:
        name, separator, value = item.partition("=")
        if not separator:
            raise SystemExit(f"--parameter {item!r}: expected Name=Value")
        overrides[name] = value
    try:
        return load_template(args.template, overrides)
    except TemplateError as error:
        raise SystemExit(f"{args.template}: {error}") from None


# ---------------------------------------------------------------- run


def _bootstrap_admin_key(template: Template, emulation: dict[str, str]) -> tuple[str, str]:
    """Makes (or registers ADMIN_API_KEY as) an admin key in this process, with the layer's own code."""
    if ADMIN_TABLE not in template.tables:
        raise SystemExit(f"The template has no {ADMIN_TABLE}: cannot make the admin key")
    os.environ.update(emulation)
    os.environ["TENANTS_TABLE"] = template.tables[ADMIN_TABLE].name
    sys.path[:0] = [str(path) for path in template.layers.values() if str(path) not in sys.path]
    from tracker.adapters.tenants_table import tenant_store  # noqa: PLC0415 - the layer is on sys.path only now
    from tracker.tenants import create_admin_key  # noqa: PLC0415

    created = create_admin_key(tenant_store(), api_key=os.environ.get("ADMIN_API_KEY"))
    return created.api_key, created.key_id


def _overridden_variables(template: Template, base_env: dict[str, str]) -> list[str]:
    """Template variables this environment sets to other values (they win, as with sam local --env-vars)."""
    return sorted(
        {
            f"{name}={base_env[name]}"
            for spec in template.functions.values()
            for name, value in spec.environment.items()
            if name in base_env and base_env[name] != value
        }
    )


def _banner(
    template: Template,
    ports: dict[str, int],
    admin_key: tuple[str, str],
    base_env: dict[str, str],
    *,
    log_dir: Path,
    verbose: bool,
) -> str:
    api, invoke_url, aws = (f"http://{HOST}:{ports[name]}" for name in ("PORT", "LAMBDA_PORT", "AWS_PORT"))
    source = "from ADMIN_API_KEY" if base_env.get("ADMIN_API_KEY") else "made now; set ADMIN_API_KEY to choose it"
    key, key_id = admin_key
    header = template.api.identity_header if template.api and template.api.identity_header else "x-api-key"
    routes = sorted(
        (route.path, route.method, spec.logical_id) for spec in template.functions.values() for route in spec.routes
    )
    lines = [
        "",
        f"API (API Gateway emulation)  {api}",
        *(f"    {method:6} {path}  -> {function}" for path, method, function in routes),
        f"Swagger UI                   {api}/docs",
        f"Lambda Invoke API            {invoke_url}   (boto3 lambda client, endpoint_url={invoke_url})",
        f"AWS emulation (moto)         {aws}   (AWS_ENDPOINT_URL={aws} AWS_ACCESS_KEY_ID=testing "
        "AWS_SECRET_ACCESS_KEY=testing)",
        f"Tables                       {', '.join(table.name for table in template.tables.values())}",
        f"Function logs                {log_dir}/<Function>.log"
        + ("" if verbose else "   (also here with --verbose or LOG_LEVEL=DEBUG)"),
        f"Metrics                      make metrics AWS_PORT={ports['AWS_PORT']}   (CloudWatch of the AWS emulation)",
        "",
        f"Admin key ({source}): {key}   (key_id {key_id})",
        "",
        "Try:",
        f"  curl -s {api}/v1/health",
        f"  curl -s -X POST {api}/v1/tenants -H '{header}: {key}' -H 'content-type: application/json' "
        """-d '{"name": "Shop A", "timezone": "Europe/Kyiv"}'""",
        "  TENANT_KEY=<api_key of the tenant created above>",
        f"""  curl -s -X POST {api}/v1/events -H "{header}: $TENANT_KEY" -H 'content-type: application/json' """
        """-d '{"user_id": "u1", "action": "login"}'""",
        f"""  curl -s "{api}/v1/users/u1/events" -H "{header}: $TENANT_KEY\"""",
        f"  open {api}/docs",
        "",
    ]
    overridden = _overridden_variables(template, base_env)
    if overridden:
        lines.append(f"Template variables taken from the environment: {', '.join(overridden)}")
    return "\n".join(lines)


def _init_error_line(function: str, error: dict[str, Any]) -> str:
    return f"WARNING: {function} does not load: {error.get('errorMessage')}"


def _log_dir(template: Template, api_port: int) -> Path:
    """A fresh folder for this run's function logs (one per API port: two stacks never share one)."""
    log_dir = template.root / ".local-stack" / f"port-{api_port}" / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    for old in log_dir.glob("*.log"):
        old.unlink()
    return log_dir


class _Observability:
    """The console lines, the function logs and the metrics of a running stack, wired together."""

    def __init__(self, template: Template, endpoint: str, log_dir: Path, verbose: bool) -> None:
        from local_stack.aws import client  # noqa: PLC0415
        from local_stack.console import Console, FunctionLogs  # noqa: PLC0415
        from local_stack.metrics import MetricsPublisher  # noqa: PLC0415

        self.template = template
        self.console = Console(verbose)
        self.metrics = MetricsPublisher(client("cloudwatch", endpoint, template.region).put_metric_data)
        self.logs = FunctionLogs(log_dir, template.functions, self._function_line)

    def start(self) -> None:
        self.metrics.start()
        self.logs.start()

    def stop(self) -> None:
        self.logs.stop()
        self.metrics.stop()

    def _function_line(self, function_id: str, line: str) -> None:
        from local_stack.console import parse_json_line  # noqa: PLC0415
        from local_stack.metrics import emf_metric_data  # noqa: PLC0415

        document = parse_json_line(line)
        if document is not None and "_aws" in document:
            self.metrics.add(emf_metric_data(document))
        self.console.function_line(function_id, line)

    def api_request(self, request: HttpRequest, response: HttpResponse, seconds: float) -> None:
        from local_stack.metrics import api_metric_data  # noqa: PLC0415

        self.console.request(request, response, seconds)
        api = self.template.api
        if response.route is not None and api is not None:
            self.metrics.add(
                api_metric_data(
                    api_name=self.template.stack_name,
                    stage=api.stage,
                    resource=response.route,
                    method=request.method,
                    status=response.status,
                    latency_ms=seconds * 1000,
                )
            )


def run(args: argparse.Namespace, base_env: dict[str, str], stop: threading.Event) -> int:
    from local_stack.aws import check_port_free, emulation_env, provision, start_moto  # noqa: PLC0415
    from local_stack.gateway import MAX_BODY_BYTES, Gateway  # noqa: PLC0415
    from local_stack.httpserver import make_server, serve_in_thread  # noqa: PLC0415
    from local_stack.invoke_api import MAX_PAYLOAD_BYTES, InvokeApi  # noqa: PLC0415
    from local_stack.lambdas import LambdaRuntime  # noqa: PLC0415
    from local_stack.openapi import document_path  # noqa: PLC0415
    from local_stack.rate_limits import TokenBuckets  # noqa: PLC0415
    from local_stack.schedules import Scheduler  # noqa: PLC0415
    from local_stack.websocket import LiveActivity, management_environment  # noqa: PLC0415

    ports = {
        name: _port(name, default) for name, default in (("PORT", 3000), ("LAMBDA_PORT", 3001), ("AWS_PORT", 5000))
    }
    ports.update((name, _port(name, default)) for name, default in (("WS_PORT", 3002), ("WS_MANAGEMENT_PORT", 3003)))
    template = _template(args)
    try:
        for variable, port in ports.items():
            check_port_free(port, HOST, variable)
    except OSError as error:
        raise SystemExit(error.strerror) from None

    if stop.is_set():
        return 0
    _block_stop_signals()
    with ExitStack() as cleanup:
        moto = start_moto(ports["AWS_PORT"], HOST)
        cleanup.callback(moto.stop)
        endpoint = f"http://{HOST}:{ports['AWS_PORT']}"
        provision(endpoint, template)
        emulation = emulation_env(endpoint, template.region, f"http://{HOST}:{ports['LAMBDA_PORT']}")
        admin_key = _bootstrap_admin_key(template, emulation)

        log_dir = _log_dir(template, ports["PORT"])
        observability = _Observability(template, endpoint, log_dir, args.verbose)
        observability.start()
        cleanup.callback(observability.stop)

        # The emulation's variables win over the template's too (its AWS_ENDPOINT_URL: "", say), and the
        # local WebSocket's URLs over the cloud ones, unless this environment sets one itself.
        websocket = management_environment(template, HOST, (ports["WS_PORT"], ports["WS_MANAGEMENT_PORT"]))
        environment = {**websocket, **base_env, **emulation}
        runtime = LambdaRuntime(template, environment, args.workers, overrides=environment, log_dir=log_dir)
        cleanup.callback(runtime.shutdown)

        servers = [
            make_server(
                Gateway(
                    template,
                    runtime.invoke,
                    document_path(template),
                    after_authorization=TokenBuckets.from_template(template),
                ),
                HOST,
                ports["PORT"],
                MAX_BODY_BYTES,
                access_log=observability.api_request,
            ),
            make_server(
                InvokeApi(runtime),
                HOST,
                ports["LAMBDA_PORT"],
                MAX_PAYLOAD_BYTES,
                access_log=observability.console.request,
            ),
        ]
        for server in servers:
            cleanup.callback(server.server_close)
            serve_in_thread(server, f"http-{server.server_address[1]}")
            cleanup.callback(server.shutdown)
        scheduler = Scheduler(template, runtime.invoke, on_run=observability.console.scheduled)
        scheduler.start()
        cleanup.callback(scheduler.stop)

        live = LiveActivity(template, runtime.invoke, endpoint, HOST, (ports["WS_PORT"], ports["WS_MANAGEMENT_PORT"]))
        cleanup.callback(live.stop)

        print(_banner(template, ports, admin_key, base_env, log_dir=log_dir, verbose=args.verbose))
        print("\n".join(live.banner()))
        print(f"Local stack ready on http://{HOST}:{ports['PORT']}", flush=True)
        runtime.warm_up_in_background(
            lambda function, error: observability.console.print(_init_error_line(function, error))
        )
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # in this thread only: it alone takes them
        stop.wait()
        print("\nStopping the local stack", file=sys.stderr, flush=True)
        for stop_signal in STOP_SIGNALS:  # a second Ctrl-C ends the process at once
            signal.signal(stop_signal, signal.SIG_DFL)
    return 0


def _catch_stop_signals() -> threading.Event:
    """Ctrl-C and SIGTERM set the returned event instead of raising.

    Installed even when the signals came in ignored (a background job of a script): Ctrl-C and
    SIGTERM always stop the stack.
    """
    stop = threading.Event()
    for stop_signal in STOP_SIGNALS:
        signal.signal(stop_signal, lambda _signum, _frame: stop.set())
    return stop


def _block_stop_signals() -> None:
    """Blocks Ctrl-C and SIGTERM in this thread and every thread it starts from now on.

    The Lambda workers those threads spawn inherit the mask (their initializer ignores SIGINT and
    unblocks both), so a Ctrl-C sent to the whole process group never becomes a KeyboardInterrupt
    traceback in a worker that is still starting; the main thread unblocks them once all is started.
    """
    # The resource tracker unblocks both in the thread that starts it: start it before blocking.
    resource_tracker.ensure_running()
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


# ---------------------------------------------------------------- invoke


def _read_event(source: str | None) -> Any:
    if source is None:
        return {}
    text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except ValueError as error:
        raise SystemExit(f"{source}: not JSON: {error}") from None


def invoke(args: argparse.Namespace, base_env: dict[str, str]) -> int:
    from local_stack.aws import emulation_env, moto_endpoint, provision, start_moto  # noqa: PLC0415
    from local_stack.lambdas import invoke_in_process  # noqa: PLC0415

    template = _template(args)
    spec = template.functions.get(args.function)
    if spec is None:
        raise SystemExit(f"No function {args.function!r} in the template: {', '.join(template.functions)}")
    event = _read_event(args.event)
    # The result alone goes to stdout: whatever the function prints goes to stderr, at the file descriptor level.
    result_out = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    with ExitStack() as cleanup:
        endpoint = args.endpoint or base_env.get("AWS_ENDPOINT_URL")
        if endpoint is None:
            moto = start_moto(0, HOST)
            cleanup.callback(moto.stop)
            endpoint = moto_endpoint(moto)
            provision(endpoint, template)
        environment = {**base_env, **emulation_env(endpoint, template.region)}
        result = invoke_in_process(spec, event, environment, overrides=environment)
    with result_out:
        result_out.write(result.payload + "\n")
    return 1 if result.function_error else 0


# ---------------------------------------------------------------- openapi


def openapi(args: argparse.Namespace) -> int:
    from local_stack.openapi import OpenApiError, document_path, dump, generate, route_mismatches  # noqa: PLC0415

    template = _template(args)
    try:
        document = generate(template)
    except OpenApiError as error:
        print(f"Cannot generate the OpenAPI document:\n{error}", file=sys.stderr)
        return 1
    for mismatch in route_mismatches(document, template):
        print(f"WARNING: {mismatch}", file=sys.stderr)
    path = document_path(template)
    text = dump(document)
    if args.check:
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            print(
                f"{path.relative_to(template.root)} is out of date with the handlers; "
                "run `python -m local_stack openapi` and commit it.",
                file=sys.stderr,
            )
            return 1
        print(f"{path.relative_to(template.root)} is up to date.")
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"Wrote {path.relative_to(template.root)} ({len(document.get('paths') or {})} paths).")
    return 0


# ---------------------------------------------------------------- metrics


def metrics(args: argparse.Namespace, base_env: dict[str, str]) -> int:
    """The last hour of a running stack's metrics, read from its CloudWatch (``AWS_PORT``)."""
    from local_stack.aws import client  # noqa: PLC0415
    from local_stack.metrics import report  # noqa: PLC0415

    template = _template(args)
    endpoint = base_env.get("AWS_ENDPOINT_URL") or f"http://{HOST}:{_port('AWS_PORT', 5000)}"
    namespace = next(
        (
            spec.environment["POWERTOOLS_METRICS_NAMESPACE"]
            for spec in template.functions.values()
            if "POWERTOOLS_METRICS_NAMESPACE" in spec.environment
        ),
        template.stack_name,
    )
    try:
        print(report(client("cloudwatch", endpoint, template.region), namespace, args.hours))
    except Exception as error:
        print(f"Cannot read the metrics at {endpoint} (is `make run` running? AWS_PORT?): {error}", file=sys.stderr)
        return 1
    return 0


# ---------------------------------------------------------------- check-build


def check_build(args: argparse.Namespace) -> int:
    """Every compiled extension of a ``sam build`` output fits the architectures of what uses it."""
    from local_stack.build_check import mismatched_extensions  # noqa: PLC0415

    template = _template(args)
    build_dir: Path = args.build_dir
    if not build_dir.is_dir():
        print(f"{build_dir} does not exist: run sam build first", file=sys.stderr)
        return 1
    # A layer must fit every function that uses it.
    users: dict[str, set[str]] = {}
    for layer_id, layer_path in template.layers.items():
        for spec in template.functions.values():
            if layer_path in spec.layer_paths:
                users.setdefault(layer_id, set()).update(spec.architectures)
    expected = {**{logical_id: set(spec.architectures) for logical_id, spec in template.functions.items()}, **users}
    problems = [f"{logical_id}: not built" for logical_id in expected if not (build_dir / logical_id).is_dir()]
    for logical_id, architectures in expected.items():
        problems += [
            f"{logical_id}/{problem}" for problem in mismatched_extensions(build_dir / logical_id, architectures)
        ]
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    print(f"{build_dir}: every compiled extension fits its functions' architectures.")
    return 0


# ---------------------------------------------------------------- main


def parser() -> argparse.ArgumentParser:
    from local_stack.lambdas import DEFAULT_MAX_WORKERS  # noqa: PLC0415
    from local_stack.template import DEFAULT_TEMPLATE  # noqa: PLC0415

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--template", type=Path, default=DEFAULT_TEMPLATE, help="the SAM template (default: %(default)s)"
    )
    common.add_argument(
        "--parameter", action="append", default=[], metavar="NAME=VALUE", help="override a template parameter"
    )
    main_parser = argparse.ArgumentParser(prog="python -m local_stack", description=__doc__.split("\n", 1)[0])
    commands = main_parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", parents=[common], help="serve the API, the Invoke API and AWS locally")
    run_parser.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("LAMBDA_WORKERS", DEFAULT_MAX_WORKERS)),
        help="worker processes per function at most (env LAMBDA_WORKERS; default %(default)s)",
    )
    run_parser.add_argument(
        "--verbose",
        action="store_true",
        default=os.environ.get("LOG_LEVEL", "").upper() == "DEBUG",
        help="print the functions' logs too (default with LOG_LEVEL=DEBUG); they always go to files",
    )
    invoke_parser = commands.add_parser("invoke", parents=[common], help="run one function once, like sam local invoke")
    invoke_parser.add_argument("function", help="the function's logical id")
    invoke_parser.add_argument("-e", "--event", help="JSON event file ('-' for stdin; default: {})")
    invoke_parser.add_argument("--endpoint", help="AWS endpoint (default: AWS_ENDPOINT_URL, else an embedded moto)")
    metrics_parser = commands.add_parser(
        "metrics", parents=[common], help="the last hour of a running stack's metrics (AWS_PORT, default 5000)"
    )
    metrics_parser.add_argument("--hours", type=float, default=1.0, help="how far back (default %(default)s)")
    openapi_parser = commands.add_parser("openapi", parents=[common], help="write docs/openapi.json")
    openapi_parser.add_argument("--check", action="store_true", help="only check that the committed file is up to date")
    check_parser = commands.add_parser(
        "check-build", parents=[common], help="check a sam build output against the functions' architectures"
    )
    check_parser.add_argument("build_dir", type=Path, nargs="?", default=Path(".aws-sam/build"))
    return main_parser


def main(argv: list[str] | None = None) -> int:
    base_env = dict(os.environ)  # before the admin-key bootstrap changes it: the functions start from this
    try:
        args = parser().parse_args(argv)
        stop = _catch_stop_signals() if args.command == "run" else None
        logging.basicConfig(
            level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        for noisy in ("werkzeug", "botocore", "urllib3"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        if stop is not None:
            return run(args, base_env, stop)
        if args.command == "invoke":
            return invoke(args, base_env)
        if args.command == "check-build":
            return check_build(args)
        if args.command == "metrics":
            return metrics(args, base_env)
        return openapi(args)
    except KeyboardInterrupt:  # Ctrl-C before `run` took the signals over, or during another command
        return 130


if __name__ == "__main__":
    sys.exit(main())
