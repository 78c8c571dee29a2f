"""The Lambda runtime emulation.

Each function runs in worker processes that behave like its Lambda execution environments: one
``ProcessPoolExecutor`` per function (``spawn`` start method, workers started on demand, at most
``max_workers`` at once), whose initializer sets the environment Lambda would set (the template's
variables included), puts the function's CodeUri and then its layers at the front of ``sys.path`` and
imports the handler module, so that every function imports *its own* ``app``, as in Lambda.

The same set-up serves the in-process mode of ``python -m local_stack invoke`` (``LoadedFunction``).

Errors come back as Lambda shapes them (``errorMessage``, ``errorType``, ``stackTrace``), flagged as
function errors. The template's ``Timeout`` is enforced twice: inside the worker with a ``SIGALRM``
timer counted from the start of the handler (as Lambda counts it, and it frees the worker), and by the
caller with ``future.result(timeout=...)``, which also allows for a cold start and a queue of busy
workers; either way the result is Lambda's ``Task timed out after N seconds`` function error.

Keep this module's imports light: every worker process imports it.
"""

from __future__ import annotations

import importlib
import json
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from local_stack.template import FunctionSpec, Template

logger = logging.getLogger(__name__)

DEFAULT_MAX_WORKERS = 4
# Lambda gives a function's init phase 10 s of its own; the caller's deadline allows for it (a cold start).
INIT_ALLOWANCE_SECONDS = 10.0
ASYNC_RETRY_DELAY_SECONDS = 1.0
WARM_UP_TIMEOUT_SECONDS = 60.0  # one cold start on a busy machine, with room to spare
SHUTDOWN_GRACE_SECONDS = 2.0  # for a terminated worker to exit before it is killed


@dataclass(frozen=True)
class InvokeResult:
    """What an invocation returns: the JSON payload as Lambda sends it, and whether it is a function error."""

    payload: str
    function_error: bool = False

    def json(self) -> Any:
        return json.loads(self.payload)


def result_note(result: InvokeResult) -> str | None:
    """What a person wants to see of a function's result: its error, or a rollup run's summary."""
    try:
        payload = result.json()
    except ValueError:
        return None
    if not isinstance(payload, dict):
        return None
    if result.function_error:
        return f"{payload.get('errorType', 'Error')}: {payload.get('errorMessage', '')}"[:500]
    if "events" in payload and "as_of" in payload:
        return f"events {payload['events']}, as_of {payload['as_of']}"
    return None


@dataclass(frozen=True)
class WorkerSetup:
    """Everything a process needs to run one function like Lambda; picklable, sent to each worker."""

    function_name: str
    function_arn: str
    handler_module: str
    handler_function: str
    sys_path: tuple[str, ...]
    environment: dict[str, str]
    timeout: int
    memory: int
    log_path: str | None = None
    """Where the worker's stdout and stderr go (the function's log file); None: the parent's."""

    @classmethod
    def of(
        cls,
        spec: FunctionSpec,
        environment: Mapping[str, str],
        overrides: Mapping[str, str] | None = None,
        log_dir: Path | None = None,
    ) -> WorkerSetup:
        """``environment`` is what the process starts from (the emulation env included); the rest is Lambda's.

        ``overrides`` replace the values of the template's variables, for those it names (as the
        ``--env-vars`` file of ``sam local``: a variable the template does not declare is not added);
        pass the emulation env in them too when the template declares its variables (to be filled by
        ``--env-vars``).
        """
        log_group = f"/aws/lambda/{spec.name}"
        lambda_env = {
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(spec.timeout),
            "AWS_LAMBDA_LOG_GROUP_NAME": log_group,
            "AWS_SAM_LOCAL": "true",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "LAMBDA_TASK_ROOT": str(spec.code_uri),
            "_HANDLER": spec.handler,
        }
        return cls(
            function_name=spec.name,
            function_arn=spec.arn,
            handler_module=spec.handler_module,
            handler_function=spec.handler_function,
            sys_path=(str(spec.code_uri), *(str(path) for path in spec.layer_paths)),
            environment={**environment, **lambda_env, **template_environment(spec, overrides or {})},
            timeout=spec.timeout,
            memory=spec.memory,
            log_path=str(function_log_path(log_dir, spec.logical_id)) if log_dir else None,
        )


def function_log_path(log_dir: Path, logical_id: str) -> Path:
    return log_dir / f"{logical_id}.log"


def template_environment(spec: FunctionSpec, overrides: Mapping[str, str]) -> dict[str, str]:
    """The function's template variables, with the values ``overrides`` gives for some of them."""
    return {name: overrides.get(name, value) for name, value in spec.environment.items()}


class LambdaContext:
    """The ``context`` argument of a handler, with the attributes and method Lambda's Python runtime gives."""

    def __init__(self, setup: WorkerSetup, request_id: str, log_stream_name: str) -> None:
        self.function_name = setup.function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = setup.function_arn
        self.memory_limit_in_mb = setup.memory
        self.aws_request_id = request_id
        self.log_group_name = setup.environment["AWS_LAMBDA_LOG_GROUP_NAME"]
        self.log_stream_name = log_stream_name
        self.identity = None
        self.client_context = None
        self.tenant_id = None
        self._deadline = time.monotonic() + setup.timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class _HandlerTimeout(BaseException):
    """Raised into a handler by SIGALRM when its Timeout is up (not an Exception: the handler cannot swallow it)."""


def error_payload(error: BaseException, request_id: str = "", error_type: str | None = None) -> dict[str, Any]:
    """A handler's exception the way Lambda's Python runtime reports it."""
    return {
        "errorMessage": str(error),
        "errorType": error_type or type(error).__name__,
        "requestId": request_id,
        "stackTrace": traceback.format_list(traceback.extract_tb(error.__traceback__)),
    }


def timeout_payload(timeout: float, request_id: str = "") -> dict[str, Any]:
    return {
        "errorMessage": f"Task timed out after {timeout:.2f} seconds",
        "errorType": "Sandbox.Timedout",
        "requestId": request_id,
        "stackTrace": [],
    }


def _stopping_result() -> InvokeResult:
    """What an invocation caught by the stack's shutdown answers (no traceback: nothing went wrong)."""
    return _error_result(
        {"errorMessage": "The local stack is stopping", "errorType": "Runtime.Shutdown", "stackTrace": []}
    )


def _error_result(payload: dict[str, Any]) -> InvokeResult:
    return InvokeResult(json.dumps(payload), function_error=True)


@contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    """Raises _HandlerTimeout in the block after ``seconds``; a no-op off the main thread (no signals there)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def on_alarm(_signum: int, _frame: FrameType | None) -> None:
        raise _HandlerTimeout

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class LoadedFunction:
    """A function's handler loaded in this process as Lambda's runtime loads it (environment, sys.path, import).

    Used by each worker process, and directly by the in-process mode. An import error does not stop
    the process: like Lambda, each invocation reports it and the next one tries the import again.
    """

    def __init__(self, setup: WorkerSetup) -> None:
        self.setup = setup
        self.log_stream_name = f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"
        os.environ.clear()
        os.environ.update(setup.environment)
        os.environ["AWS_LAMBDA_LOG_STREAM_NAME"] = self.log_stream_name
        sys.path[:] = [*setup.sys_path, *(path for path in sys.path if path not in setup.sys_path)]
        self._handler: Callable[[Any, Any], Any] | None = None
        self._init_error: dict[str, Any] | None = None
        self._load()

    def _load(self) -> None:
        module_name, function_name = self.setup.handler_module, self.setup.handler_function
        try:
            module = importlib.import_module(module_name)
        except Exception as error:
            self._init_failed(error, "Runtime.ImportModuleError", f"Unable to import module '{module_name}': {error}")
            return
        handler = getattr(module, function_name, None)
        if not callable(handler):
            missing = AttributeError(f"Handler '{function_name}' missing on module '{module_name}'")
            self._init_failed(missing, "Runtime.HandlerNotFound", str(missing))
            return
        self._handler, self._init_error = handler, None

    def _init_failed(self, error: Exception, error_type: str, message: str) -> None:
        _log_error(self.setup.function_name, error)
        self._init_error = {**error_payload(error, error_type=error_type), "errorMessage": message}

    @property
    def init_error(self) -> dict[str, Any] | None:
        return self._init_error

    def invoke(self, event_json: str) -> InvokeResult:
        """Runs the handler on the event (JSON text, as Lambda receives it); never raises."""
        request_id = str(uuid.uuid4())
        if self._handler is None:
            self._load()
        if self._handler is None:
            return _error_result({**(self._init_error or {}), "requestId": request_id})
        context = LambdaContext(self.setup, request_id, self.log_stream_name)
        try:
            with _alarm(self.setup.timeout):
                result = self._handler(json.loads(event_json), context)
        except _HandlerTimeout:
            print(f"{request_id} Task timed out after {self.setup.timeout:.2f} seconds", file=sys.stderr)
            return _error_result(timeout_payload(self.setup.timeout, request_id))
        except Exception as error:
            _log_error(self.setup.function_name, error)
            return _error_result(error_payload(error, request_id))
        try:
            return InvokeResult(json.dumps(result))
        except (TypeError, ValueError) as error:
            payload = error_payload(error, request_id, "Runtime.MarshalError")
            payload["errorMessage"] = f"Unable to marshal response: {error}"
            return _error_result(payload)


def _log_error(function_name: str, error: BaseException) -> None:
    """What Lambda writes to the function's log for an unhandled error."""
    trace = "".join(traceback.format_exception(error))
    print(f"[ERROR] {function_name}: {type(error).__name__}: {error}\n{trace}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- worker processes

_worker: LoadedFunction | None = None


def _init_worker(setup: WorkerSetup) -> None:
    global _worker  # noqa: PLW0603 - the one function this worker process runs
    # Ctrl-C reaches the whole process group: the parent shuts the workers down, not the signal.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # `run` blocks both in the threads that spawn workers, and the mask is inherited: a worker must
    # still stop on SIGTERM.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    if setup.log_path is not None:
        _redirect_output(setup.log_path)
    _exit_with_parent()
    _worker = LoadedFunction(setup)


def _exit_with_parent(poll_seconds: float = 1.0) -> None:
    """Ends this worker once the process that started it is gone (killed with SIGKILL, say): an orphan
    worker would otherwise wait for work forever."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_seconds)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _redirect_output(log_path: str) -> None:
    """The worker's stdout and stderr (Powertools' JSON lines, EMF documents, tracebacks) go to the
    function's log file, a line per write (appends of whole lines from several workers do not mix)."""
    descriptor = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(descriptor, sys.stdout.fileno())
    os.dup2(descriptor, sys.stderr.fileno())
    os.close(descriptor)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]


def _invoke_in_worker(event_json: str) -> InvokeResult:
    if _worker is None:  # pragma: no cover - the initializer always runs first
        raise RuntimeError("worker not initialized")
    return _worker.invoke(event_json)


def _init_error_in_worker() -> dict[str, Any] | None:
    return None if _worker is None else _worker.init_error


class FunctionPool:
    """The execution environments of one function: a pool of spawned worker processes."""

    def __init__(self, setup: WorkerSetup, max_workers: int = DEFAULT_MAX_WORKERS) -> None:
        self.setup = setup
        self._max_workers = max_workers
        self._lock = threading.Lock()
        self._executor = self._new_executor()
        self._closed = False
        self._used = False

    def _new_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self._max_workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(self.setup,),
        )

    def _submit(self, function: Callable[..., Any], *args: Any) -> Future[Any]:
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self.setup.function_name} is shut down")
            self._used = True
            try:
                return self._executor.submit(function, *args)
            except BrokenProcessPool:
                # A worker died (os._exit, a crash): start over with fresh environments, as Lambda would.
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = self._new_executor()
                return self._executor.submit(function, *args)

    def submit(self, event: Any) -> Future[InvokeResult]:
        """Starts an invocation; the future's result is the InvokeResult (without the caller's deadline)."""
        return self._submit(_invoke_in_worker, json.dumps(event))

    def invoke(self, event: Any) -> InvokeResult:
        try:
            future = self.submit(event)
            result: InvokeResult = future.result(timeout=self.setup.timeout + INIT_ALLOWANCE_SECONDS)
        except FutureTimeout:
            future.cancel()
            logger.warning("%s did not answer within its Timeout; its worker may be stuck", self.setup.function_name)
            return _error_result(timeout_payload(self.setup.timeout))
        except BrokenProcessPool as error:
            if self._closed:
                return _stopping_result()
            return _error_result(error_payload(error, error_type="Runtime.ExitError"))
        except CancelledError:  # the pool was shut down with this invocation still waiting
            return _stopping_result()
        except RuntimeError:
            if not self._closed:
                raise
            return _stopping_result()
        return result

    @property
    def used(self) -> bool:
        """Whether anything ran (or is running) in this pool: its first worker is started or starting."""
        return self._used

    def warm_up(self) -> dict[str, Any] | None:
        """Starts one worker (a cold start ahead of time); returns the handler's init error, if any."""
        try:
            error: dict[str, Any] | None = self._submit(_init_error_in_worker).result(timeout=WARM_UP_TIMEOUT_SECONDS)
        except FutureTimeout:
            return {"errorType": "Runtime.InitTimeout", "errorMessage": "The handler did not load in time"}
        return error

    def shutdown(self) -> None:
        """Cancels what has not started and stops the workers at once, as Lambda drops its environments.

        Workers are terminated rather than asked to exit: a clean interpreter exit of a process that
        imported boto3, pydantic and Powertools costs a CPU-second or so, a busy worker may be stuck,
        and there is nothing in a worker to save.
        """
        with self._lock:
            self._closed = True
            executor = self._executor
        processes = list(executor._processes.values())  # the pool has no public way to stop its workers
        executor.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(timeout=SHUTDOWN_GRACE_SECONDS)
            if process.is_alive():  # SIGTERM still blocked: a worker that had not finished starting
                process.kill()
                process.join()


SETTLE_VARIABLE = "ROLLUP_SETTLE_SECONDS"
"""A function with this variable counts what other functions wrote (the rollup): see ``InFlight``."""


class InFlight:
    """The invocations running now, so that a rollup can wait for the writes begun before it.

    In the cloud the rollup counts only events received ``ROLLUP_SETTLE_SECONDS`` (60 s) ago: an
    ingest that took its ``received_at`` but has not written yet is given that long. Locally the
    settle is 0 and the runtime gives the same guarantee exactly: a settling function starts only
    once every invocation of another function begun before it has returned (or passed its
    deadline). Invocations begun after it take a later ``received_at`` than its "now" and are
    counted by the next run. Settling functions do not wait for each other: two rollups still race
    for the lease as in the cloud.
    """

    def __init__(self) -> None:
        self._deadlines: dict[int, float] = {}
        self._next = 0
        self._changed = threading.Condition()

    @contextmanager
    def running(self, timeout: float) -> Iterator[None]:
        with self._changed:
            number = self._next
            self._next += 1
            self._deadlines[number] = time.monotonic() + timeout
        try:
            yield
        finally:
            with self._changed:
                del self._deadlines[number]
                self._changed.notify_all()

    def settle(self) -> None:
        """Waits until the invocations running now have returned or passed their deadline."""
        with self._changed:
            earlier = set(self._deadlines)
            while pending := earlier & self._deadlines.keys():
                left = max(self._deadlines[number] for number in pending) - time.monotonic()
                if left <= 0:
                    return
                self._changed.wait(left)


class LambdaRuntime:
    """The functions of a template, each in its own FunctionPool, invoked by logical id or local name."""

    def __init__(
        self,
        template: Template,
        environment: Mapping[str, str],
        max_workers: int = DEFAULT_MAX_WORKERS,
        overrides: Mapping[str, str] | None = None,
        log_dir: Path | None = None,
    ) -> None:
        self.template = template
        self._pools = {
            logical_id: FunctionPool(WorkerSetup.of(spec, environment, overrides, log_dir), max_workers)
            for logical_id, spec in template.functions.items()
        }
        self._names = {spec.name: logical_id for logical_id, spec in template.functions.items()}
        self._names.update({spec.arn: logical_id for logical_id, spec in template.functions.items()})
        self._names.update({logical_id: logical_id for logical_id in template.functions})
        self._background = ThreadPoolExecutor(max_workers=16, thread_name_prefix="event-invocation")
        self._closing = threading.Event()
        self._in_flight = InFlight()

    def resolve(self, name: str) -> str | None:
        """The logical id of a function named by logical id, local name or ARN; None when there is none."""
        return self._names.get(name)

    def invoke(self, logical_id: str, event: Any) -> InvokeResult:
        pool = self._pools[logical_id]
        if SETTLE_VARIABLE in self.template.functions[logical_id].environment:
            self._in_flight.settle()
            return pool.invoke(event)
        with self._in_flight.running(pool.setup.timeout + INIT_ALLOWANCE_SECONDS):
            return pool.invoke(event)

    def invoke_async(self, logical_id: str, event: Any) -> Future[InvokeResult]:
        """An ``Event`` invocation, run in the background and retried on a function error as Lambda does.

        ``EventInvokeConfig.MaximumRetryAttempts`` retries (2 by default), after 1 s then 2 s here
        where Lambda waits about 1 then 2 minutes.
        """
        return self._background.submit(self._invoke_with_retries, logical_id, event)

    def _invoke_with_retries(self, logical_id: str, event: Any) -> InvokeResult:
        retries = self.template.functions[logical_id].async_retries
        attempt = 0
        result = self.invoke(logical_id, event)
        while result.function_error and attempt < retries:
            attempt += 1
            logger.warning("%s failed; retry %d of %d: %.300s", logical_id, attempt, retries, result.payload)
            if self._closing.wait(ASYNC_RETRY_DELAY_SECONDS * attempt):
                break
            result = self.invoke(logical_id, event)
        return result

    def warm_up_in_background(self, on_init_error: Callable[[str, dict[str, Any]], None]) -> threading.Thread:
        """Starts one worker for each function that has none yet, one function at a time, in a thread.

        Nothing waits for it: the stack serves at once, and a function asked for before its turn starts
        its worker on demand, as a Lambda cold start. One at a time keeps a core free for those
        requests (twenty interpreters importing boto3 and pydantic at once would hold the machine for
        seconds). ``on_init_error(logical_id, error)`` hears of each handler that does not load.
        """

        def warm_up() -> None:
            for logical_id, pool in self._pools.items():
                if self._closing.is_set():
                    return
                if pool.used:
                    continue
                try:
                    error = pool.warm_up()
                except (RuntimeError, BrokenProcessPool, CancelledError):  # the stack is stopping
                    return
                if error and not self._closing.is_set():
                    on_init_error(logical_id, error)

        thread = threading.Thread(target=warm_up, name="warm-up", daemon=True)
        thread.start()
        return thread

    def shutdown(self) -> None:
        self._closing.set()
        self._background.shutdown(wait=False, cancel_futures=True)
        if self._pools:
            with ThreadPoolExecutor(max_workers=len(self._pools)) as stopper:
                list(stopper.map(FunctionPool.shutdown, self._pools.values()))


def invoke_in_process(
    spec: FunctionSpec, event: Any, environment: Mapping[str, str], overrides: Mapping[str, str] | None = None
) -> InvokeResult:
    """Runs the function once in this process, set up exactly as a worker (``os.environ`` is replaced)."""
    return LoadedFunction(WorkerSetup.of(spec, environment, overrides)).invoke(json.dumps(event))
