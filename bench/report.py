"""The text report of a bench run (the JSON holds the same and more)."""

from __future__ import annotations

from typing import Any


def _ops(requests: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(requests.items())) or "none"


def _imports(section: dict[str, Any]) -> list[str]:
    reference = section["reference"]
    lines = [
        f"1. Cold import of each handler (median of {section['rounds']} fresh interpreters, interleaved; "
        f"goal <= {section['goal_ratio']}x the reference)",
        f"   reference: {reference['statement']}: {reference['median_ms']:.0f} ms (min {reference['min_ms']:.0f})",
        f"   {'function':<24}{'median ms':>10}{'min ms':>9}{'ratio':>8}{'min/min':>9}  goal (on the medians)",
    ]
    for name, entry in section["functions"].items():
        verdict = "ok" if entry["within_goal"] else f"OVER by {entry['ratio'] / section['goal_ratio'] - 1:.1%}"
        lines.append(
            f"   {name:<24}{entry['median_ms']:>10.0f}{entry['min_ms']:>9.0f}{entry['ratio']:>8.2f}"
            f"{entry['ratio_of_minimums']:>9.2f}  {verdict}"
        )
    for name, entry in section["functions"].items():
        if "heaviest_packages" in entry:
            heavy = ", ".join(f"{p['package']} {p['self_ms']:.0f}" for p in entry["heaviest_packages"])
            lines.append(f"   {name} import self time by package (ms, -X importtime): {heavy}")
    return lines


def _ingest(section: dict[str, Any]) -> list[str]:
    lines = [
        f"2. Ingest through the local stack: POST /v1/events/batch, {section['batch_size']} events per request",
        f"   {'phase':<12}{'clients':>8}{'events':>8}{'seconds':>9}{'events/s':>10}{'p50 ms':>9}{'p95 ms':>9}"
        "  first send acc/dup/rej  stored",
    ]
    for phase in ("sequential", "concurrent"):
        entry = section[phase]
        first = entry["first_send"]
        stored = f"{entry['stored']:,}/{entry['events']:,}" + ("" if entry["all_stored"] else "  NOT ALL")
        lines.append(
            f"   {phase:<12}{entry['clients']:>8}{entry['events']:>8}{entry['seconds']:>9.1f}"
            f"{entry['events_per_second']:>10.0f}{entry['request_ms']['p50']:>9.0f}{entry['request_ms']['p95']:>9.0f}"
            f"  {first['accepted']:,}/{first['duplicates']:,}/{first['rejected']:,}  {stored}"
        )
    for phase in ("sequential", "concurrent"):
        entry = section[phase]
        if entry["first_send"]["rejected"] or entry["failures"]:
            lines.append(
                f"   {phase}: rejected at first send by code {entry['first_send']['rejected_by_code']}, "
                f"{entry['resent_events']} events resent; failed requests: {entry['failures'] or 'none'}"
            )
    stop, back = section["stop"], section["read_back"]
    lines.append(
        f"   local stack up in {section['local_stack_start_seconds']} s; warm-up of 4 one-event batches first; "
        f"read back {back['found']}/{back['expected']} events of {back['user']}"
    )
    lines.append(
        f"   SIGINT: exit status {stop['exit_status']} after {stop['seconds_to_exit']} s, "
        f"{'clean' if stop['clean'] else 'NOT clean'}"
        f"{'; left behind: ' + '; '.join(stop['processes_left_behind']) if stop['processes_left_behind'] else ''}"
    )
    return lines


def _rollup(section: dict[str, Any]) -> list[str]:
    lines = [
        "3. Rollup: one run of tracker.rollup.run_rollup on moto, the product's client counted "
        "(items read = Items of Query + Responses of BatchGetItem + Item of GetItem)",
        f"   {'scenario':<28}{'older':>8}{'new':>7}{'items read':>11}{'/event':>8}{'keys+items/ev':>14}"
        f"{'RRU/ev':>8}{'aggr. writes/ev':>16}{'writes/ev':>10}{'WRU/ev':>8}{'parts':>6}{'seconds':>8}",
    ]
    names = {
        "A_with_history": "A: with older events",
        "B_without_history": "B: no history",
        "C_live_events": "C: events sent live",
    }
    for key, label in names.items():
        entry = section[key]
        counts = entry["dynamodb"]
        lines.append(
            f"   {label:<28}{entry['old_events']:>8}{entry['new_events']:>7}{counts['total_items_read']:>11}"
            f"{entry['items_read_per_event']:>8.4f}{entry['keys_and_items_read_per_event']:>14.4f}"
            f"{entry['read_units_per_event']:>8.4f}{entry['aggregate_writes_per_event']:>16.4f}"
            f"{entry['write_items_per_event']:>10.4f}{entry['write_units_per_event']:>8.4f}{entry['commits']:>6}"
            f"{entry['rollup_seconds']:>8.1f}"
        )
    for key, label in names.items():
        entry = section[key]
        lines.append(
            f"   {label}: the new events add to {entry['distinct_aggregates_of_new_events']:,} distinct aggregates "
            f"({entry['distinct_user_days_of_new_events']:,} user-days); the run wrote "
            f"{entry['aggregates_written']:,} aggregates in {entry['commits']} part(s), "
            f"{entry['dynamodb']['write_request_units']:,} WRU in all"
        )
        reader = entry["reader_every_100ms"]
        lines.append(
            f"   {label}: a reader polling daily every 100 ms during the run: {reader['answers']} answers, "
            f"{reader['status_503']} 503, as_of or a count went back {reader['as_of_or_count_went_back']} times"
        )
        lines.append(
            f"   {label}: requests {_ops(entry['dynamodb']['requests'])}; items {_ops(entry['dynamodb']['items_read'])}"
        )
    versus = section["A_vs_B"]
    a_items, b_items = versus["items_read"]
    a_keys, b_keys = versus["keys_and_items_read"]
    lines.append(
        f"   A vs B: items read {a_items} vs {b_items}: {'equal' if versus['items_read_equal'] else 'NOT equal'}; "
        f"events read + keys requested {a_keys} vs {b_keys}: "
        f"{'equal' if versus['keys_and_items_read_equal'] else 'NOT equal'}; "
        f"requests {'equal' if versus['requests_equal'] else 'differ'}"
    )
    check = section["fast_path_check"]
    lines.append(
        f"   moto fast path check ({check['old_events']}+{check['new_events']} events, plain moto vs fast path): "
        f"counts {'same' if check['same_dynamodb_counts'] else 'DIFFER'}, "
        f"aggregates {'same' if check['same_aggregates'] else 'DIFFER'}"
    )
    event = section.get("event_item_bytes", {})
    if event:
        lines.append("   one ingested event: " + ", ".join(f"{name} {size} bytes" for name, size in event.items()))
    sizes = section["A_with_history"]["aggregate_item_bytes"]
    lines.append(f"   largest aggregate item {sizes['max']} bytes (mean {sizes['mean']})")
    return lines


def _stats(section: dict[str, Any]) -> list[str]:
    small, large = section["events"]["small"], section["events"]["large"]
    lines = [
        f"4. Statistics routes through functions/stats/app.py: {small:,} vs {large:,} events behind them "
        f"({section['users']} users x {section['hours']} hours, {section['actions']} actions, {section['timezone']})",
        f"   {'route':<50}{'requests':>18}{'items read':>16}{'RRU':>12}  equal",
    ]
    for measured in section["routes"].values():
        a, b = measured["small"]["dynamodb"], measured["large"]["dynamodb"]
        equal = a["requests"] == b["requests"] and a["total_items_read"] == b["total_items_read"]
        lines.append(
            f"   {measured['description']:<50}{a['total_requests']:>8} | {b['total_requests']:<7}"
            f"{a['total_items_read']:>7} | {b['total_items_read']:<6}{a['read_request_units']:>5} | "
            f"{b['read_request_units']:<5}  {'yes' if equal else 'NO'}"
        )
    for measured in section["routes"].values():
        lines.append(f"   {measured['description']}: {_ops(measured['small']['dynamodb']['requests'])}")
    lines.append(f"   all equal between {small:,} and {large:,}: {'yes' if section['all_equal'] else 'NO'}")
    for window, figures in section.get("top_users_windows", {}).items():
        lines.append(
            f"   top-users {window}: {figures['distinct_users_in_window']} distinct users active, "
            f"{figures['items_read']} items read, {figures['requests']} requests, {figures['read_request_units']} RRU"
        )
    return lines


def render(results: dict[str, Any]) -> str:
    meta = results["meta"]
    lines = [
        f"Activity tracker bench ({meta['mode']}), {meta['started']}, commit {meta['commit']}, "
        f"Python {meta['python']}, "
        f"{meta['cpus']} CPUs, load average {meta['load_average_at_start'][0]} -> {meta['load_average_at_end'][0]}, "
        f"{meta['total_seconds']} s",
    ]
    for name, render_section in (("imports", _imports), ("ingest", _ingest), ("rollup", _rollup), ("stats", _stats)):
        if name in results:
            lines += ["", *render_section(results[name]), f"   ({meta['section_seconds'][name]} s)"]
        elif name in meta["errors"]:
            lines += ["", f"{name}: FAILED", meta["errors"][name]]
    if meta["invalid_measurements"]:
        lines += ["", "INVALID MEASUREMENTS:", *(f"  - {problem}" for problem in meta["invalid_measurements"])]
    return "\n".join(lines)
