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
    phases = [phase for phase in ("sequential", "concurrent", "clients_16") if phase in section]
    for phase in phases:
        entry = section[phase]
        first = entry["first_send"]
        stored = f"{entry['stored']:,}/{entry['events']:,}" + ("" if entry["all_stored"] else "  NOT ALL")
        lines.append(
            f"   {phase:<12}{entry['clients']:>8}{entry['events']:>8}{entry['seconds']:>9.1f}"
            f"{entry['events_per_second']:>10.0f}{entry['request_ms']['p50']:>9.0f}{entry['request_ms']['p95']:>9.0f}"
            f"  {first['accepted']:,}/{first['duplicates']:,}/{first['rejected']:,}  {stored}"
        )
    for phase in phases:
        entry = section[phase]
        if entry["first_send"]["rejected"] or entry["failures"]:
            lines.append(
                f"   {phase}: rejected at first send by code {entry['first_send']['rejected_by_code']}, "
                f"{entry['resent_events']} events resent; failed requests: {entry['failures'] or 'none'}"
            )
    if "raw_put_item" in section:
        raw = ", ".join(
            f"{entry['puts_per_second']:.0f}/s from {entry['clients']} client(s)"
            for entry in section["raw_put_item"].values()
        )
        lines.append(f"   moto's raw conditional PutItem over HTTP (the floor): {raw}")
        lines.append(
            f"   ingest at 4 clients / raw at 4 clients: {section['ratio_to_raw_at_4_clients']:.2f} (goal >= 0.8)"
        )
    if "profile" in section:
        profile = section["profile"]
        shares = ", ".join(f"{name} {share:.0%}" for name, share in profile["shares"].items())
        lines.append(f"   where a batch of {profile['batch']} waits and works (samples of busy threads): {shares}")
        lines.append(f"   largest stacks: {profile['profile']}")
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


def _emulator(section: dict[str, Any]) -> list[str]:
    lines = [
        f"5. The local stack's emulator: one {section['transaction_items']}-item TransactWriteItems (a rollup commit)"
    ]
    lines += [
        f"   {entry['items']:>9,} aggregates, moto {'patched' if entry['patched'] else 'as it comes'}: "
        f"{entry['median_seconds'] * 1000:,.0f} ms (median of {len(entry['rounds'])})"
        for entry in section["commits"]
    ]
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
        "D_points_and_properties": "D: C + points, 2 properties",
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
    scored = section.get("event_with_properties_item_bytes", {})
    if scored:
        lines.append("   with 2 properties: " + ", ".join(f"{name} {size} bytes" for name, size in scored.items()))
        units = section["ingest_write_units"]
        lines.append(
            "   ingest WRU per event (by_received_v2 now / by_received before): "
            + ", ".join(f"{name} {u['now']} / {u['before_by_received_v2']}" for name, u in units.items())
        )
        versus = section["D_vs_C"]
        lines.append(
            "   D vs C (points and 2 properties vs none): aggregate writes/event "
            f"{versus['aggregate_writes_per_event'][0]} vs {versus['aggregate_writes_per_event'][1]}, "
            f"WRU/event {versus['write_units_per_event'][0]} vs {versus['write_units_per_event'][1]}, "
            f"largest item {versus['largest_item_bytes'][0]} vs {versus['largest_item_bytes'][1]} bytes"
        )
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


def _catalog(section: dict[str, Any]) -> list[str]:
    validation, search = section["validation"], section["search"]
    lines = [
        f"5. Tracking plan: POST /v1/events/batch of {validation['batch_size']} through functions/ingest/app.py "
        f"on moto (median of {validation['rounds']} rounds, 20 actions, every 10th event breaks the plan)",
        f"   {'mode':<22}{'ms/batch':>10}{'vs off':>9}  requests per batch{'':<22}accepted/rejected",
    ]
    for mode, entry in validation["modes"].items():
        outcome = entry["outcome"]
        lines.append(
            f"   {mode:<22}{entry['median_ms']:>10.1f}{entry['added_ms_vs_off']:>+9.1f}  "
            f"{_ops(entry['requests_per_batch']):<40}{outcome['accepted']}/{outcome['rejected']}"
        )
    check = validation["check_only_ms"]
    lines.append(
        f"   the check alone (no I/O): flag {check['flag']:.2f} ms, block {check['block']:.2f} ms per batch; "
        f"a cold cache's read of the batch's {len(validation['actions'])} event types (one BatchGetItem): "
        f"{validation['cold_catalog_read_ms']:.1f} ms"
    )
    lines.append(
        f"   Catalog search through functions/event_types/app.py: {search['catalog_size']:,} types in the tenant "
        f"({search['item_bytes']} bytes an item in DynamoDB), limit 50"
    )
    lines.append(f"   {'search':<26}{'median ms':>10}{'max ms':>8}{'Query':>7}{'items read':>12}{'RRU':>8}  answered")
    for label, entry in search["calls"].items():
        lines.append(
            f"   {label:<26}{entry['median_ms']:>10.1f}{entry['max_ms']:>8.1f}{entry['requests'].get('Query', 0):>7}"
            f"{entry['items_scanned']:>12,}{entry['billed_read_units']:>8}  {entry['items_answered']}"
        )
    return lines


def _export(section: dict[str, Any]) -> list[str]:
    dynamodb, dollars = section["dynamodb"], section["dollars"]
    return [
        f"5. Export of one user with {section['events']:,} events through functions/export_worker/app.py "
        f"({section['memory_mb']} MB, parts of {section['part_bytes'] // (1024 * 1024)} MiB)",
        f"   {section['invocations']} invocation(s) {section['outcomes']}, "
        f"{section['worker_seconds_total']} s on moto; "
        f"file {section['file_bytes']:,} bytes, {section['file_lines']:,} lines, "
        f"{'complete and in order' if section['complete_and_in_order'] else 'NOT COMPLETE'}",
        f"   DynamoDB: {_ops(dynamodb['requests'])}; {dynamodb['total_items_read']:,} items read, "
        f"{dynamodb['read_request_units']} RRU, {dynamodb['write_items']} items written",
        f"   S3: {_ops(section['s3_requests'])}",
        f"   cost: DynamoDB reads ${dollars['dynamodb_reads']:.6f}, writes ${dollars['dynamodb_writes']:.6f}, "
        f"S3 ${dollars['s3_requests']:.6f}, Lambda <= ${dollars['lambda_upper_bound']:.6f}; "
        f"total <= ${section['dollars_total']:.6f}",
    ]


def _live(section: dict[str, Any]) -> list[str]:
    ingest, lag, stop = section["ingest"], section["lag_ms"], section["stop"]
    return [
        f"5. Live activity: {section['clients']} WebSocket clients (one user each), "
        f"{ingest['events_per_second']} events/s for {ingest['seconds']} s "
        f"(target {section['target_events_per_second']}/s for {section['target_seconds']} s)",
        f"   messages {section['messages_delivered']:,} of {section['messages_expected']:,} expected; "
        f"duplicates {section['duplicates']}, foreign {section['foreign_messages']}; "
        f"clients exact {section['clients_exact']}/{section['clients']}",
        f"   broadcast lag (received_at -> client): p50 {lag['p50']} ms, p99 {lag['p99']} ms, max {lag['max']} ms; "
        f"within 2 s: {section['within_2s']}",
        f"   from the ingest answer to the client: p50 {section['after_answer_ms']['p50']} ms, "
        f"p99 {section['after_answer_ms']['p99']} ms; within 2 s: {section['within_2s_of_answer']}",
        f"   stopped with every client connected: exit {stop.get('exit_status')} in {stop.get('seconds_to_exit')} s, "
        f"clean {stop.get('clean')}; client close codes {section['close_codes']}",
    ]


def _sdk(section: dict[str, Any]) -> list[str]:
    cli, faults = section["cli_import"], section["exactly_once"]
    ratio = section["ratio"]
    verdict = "ok" if ratio is not None and ratio >= section["goal_ratio"] else "UNDER the goal"
    tracker = faults["tracker"]
    return [
        f"5. Python SDK and CLI through the local stack ({section['clients']} connections each)",
        f"   raw batch ingest (pre-built events): {section['raw_before']['events_per_second']:.0f} events/s before, "
        f"{section['raw_after']['events_per_second']:.0f} after; mean {section['raw_events_per_second']:.0f}",
        f"   {cli['command']}: {cli['events']:,} events in {cli['seconds']} s = "
        f"{cli['events_per_second']:.0f} events/s, {ratio} of raw (goal >= {section['goal_ratio']}: {verdict})",
        f"   the CLI said: {cli['summary']}",
        f"   SDK exactly-once under injected faults: {faults['events']:,} events from {faults['threads']} threads in "
        f"{faults['seconds']} s; stored {faults['stored']:,}, missing {faults['missing']}, stored twice "
        f"{faults['stored_twice']}: {'ok' if faults['ok'] else 'NOT OK'}",
        f"   the SDK: {tracker['requests']} requests, {tracker['retries']} retries, accepted {tracker['accepted']:,}, "
        f"duplicates {tracker['duplicates']:,} (resent after a lost answer, stored once)",
        f"   faults injected (batch requests): {faults['faults']}",
    ]


def render(results: dict[str, Any]) -> str:
    meta = results["meta"]
    lines = [
        f"Activity tracker bench ({meta['mode']}), {meta['started']}, commit {meta['commit']}, "
        f"Python {meta['python']}, "
        f"{meta['cpus']} CPUs, load average {meta['load_average_at_start'][0]} -> {meta['load_average_at_end'][0]}, "
        f"{meta['total_seconds']} s",
    ]
    sections = (
        ("imports", _imports),
        ("ingest", _ingest),
        ("rollup", _rollup),
        ("stats", _stats),
        ("catalog", _catalog),
        ("emulator", _emulator),
        ("export", _export),
        ("live", _live),
        ("sdk", _sdk),
    )
    for name, render_section in sections:
        if name in results:
            lines += ["", *render_section(results[name]), f"   ({meta['section_seconds'][name]} s)"]
        elif name in meta["errors"]:
            lines += ["", f"{name}: FAILED", meta["errors"][name]]
    if meta["invalid_measurements"]:
        lines += ["", "INVALID MEASUREMENTS:", *(f"  - {problem}" for problem in meta["invalid_measurements"])]
    return "\n".join(lines)
