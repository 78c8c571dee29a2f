"""Where a batch of 500 goes inside the local stack's ingest: one batch through the real handler (in a fresh
process, as a local Lambda worker runs it) against the local stack's emulator, sampled.

The ingest function writes on a thread pool and the emulator answers on threads of its own, all in this
process here, so a sampler reads every thread's stack each millisecond (``sys._current_frames``) and
charges each sample of a busy thread (the function's, its pool's, the emulator's request threads) to where
its innermost frame is: moto, werkzeug, botocore and urllib3, a socket (waiting for the other side), the
emulator's lock, pydantic, Powertools, or the rest. A thread waiting for the GIL is charged where it
waits, so the shares are of wall time across threads, not of CPU. The largest stacks go to
``.bench/ingest_profile.txt``.
"""

from __future__ import annotations

import json
import multiprocessing
import sys
import threading
import time
import traceback
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

from bench.common import RESULTS_PATH, ROOT, load_template

BATCH = 500
PROFILE_PATH = RESULTS_PATH.parent / "ingest_profile.txt"
SAMPLE_SECONDS = 0.001
# The first whose marker is in the innermost frame's file takes the sample.
_PLACES = (
    ("waiting on a socket (the other side's turn)", ("socket.py", "selectors.py", "ssl.py")),
    ("waiting for the emulator's lock", ("local_stack/emulator.py",)),
    ("moto (the emulator's own work)", ("moto/",)),
    ("werkzeug and http.server (the emulator's HTTP)", ("werkzeug/", "http/server.py", "socketserver.py")),
    ("botocore, urllib3, http.client (the function's AWS calls)", ("botocore/", "urllib3/", "http/client.py")),
    ("pydantic (validation)", ("pydantic",)),
    ("Powertools (logger, metrics, resolver)", ("aws_lambda_powertools",)),
    ("json", ("json/",)),
)
_IDLE = ("threading.py", "concurrent/futures/thread.py", "queue.py")


def _place(frame: FrameType) -> str | None:
    """Where a thread's sample goes; None for a thread that waits for work (an idle pool thread)."""
    path = frame.f_code.co_filename
    if any(marker in path for marker in _IDLE) and frame.f_code.co_name in {"wait", "get", "_worker", "acquire"}:
        return None
    return next((name for name, markers in _PLACES if any(marker in path for marker in markers)), "the rest")


def _profiled_batch(events_path: str) -> tuple[dict[str, int], list[str]]:
    from local_stack.aws import emulation_env, provision
    from local_stack.emulator import Emulator
    from local_stack.lambdas import LoadedFunction, WorkerSetup

    template = load_template()
    emulator = Emulator("127.0.0.1", 0)
    emulator.start()
    provision(emulator.endpoint, template)
    environment = emulation_env(emulator.endpoint, template.region)
    function = LoadedFunction(WorkerSetup.of(template.functions["IngestFunction"], environment, overrides=environment))
    sample = json.loads(Path(events_path).read_text(encoding="utf-8"))
    function.invoke(json.dumps({**sample, "body": json.dumps({"events": [{"user_id": "warm", "action": "x"}]})}))
    batch = [{"event_id": f"p-{index}", "user_id": f"u{index % 50}", "action": "view"} for index in range(BATCH)]
    sample["body"] = json.dumps({"events": batch})

    places: Counter[str] = Counter()
    stacks: Counter[str] = Counter()
    done = threading.Event()
    sampler_id = threading.get_ident()

    def sample_threads() -> None:
        own = threading.get_ident()
        while not done.wait(SAMPLE_SECONDS):
            for ident, frame in sys._current_frames().items():
                if ident in {own, sampler_id}:
                    continue
                place = _place(frame)
                if place is not None:
                    places[place] += 1
                    stacks[
                        " <- ".join(
                            f"{Path(f.filename).name}:{f.name}" for f in traceback.extract_stack(frame)[-4:][::-1]
                        )
                    ] += 1

    sampler = threading.Thread(target=sample_threads, daemon=True)
    sampler.start()
    result = function.invoke(json.dumps(sample))
    done.set()
    sampler.join()
    emulator.stop()
    if result.function_error or json.loads(result.payload).get("statusCode") != 200:
        raise RuntimeError(f"the profiled batch failed: {result.payload[:300]}")
    return dict(places), [f"{count:6d}  {stack}" for stack, count in stacks.most_common(40)]


def run() -> dict[str, Any]:
    events_path = str(ROOT / "events" / "ingest" / "post_batch.json")
    started = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        places, stacks = pool.apply(_profiled_batch, (events_path,))
    PROFILE_PATH.parent.mkdir(parents=True, exist_ok=True)
    PROFILE_PATH.write_text(
        "samples  innermost frames (of busy threads)\n" + "\n".join(stacks) + "\n", encoding="utf-8"
    )
    total = sum(places.values()) or 1
    return {
        "batch": BATCH,
        "process_seconds": round(time.perf_counter() - started, 1),
        "samples": total,
        "shares": {name: round(count / total, 3) for name, count in sorted(places.items(), key=lambda item: -item[1])},
        "profile": str(PROFILE_PATH),
    }
