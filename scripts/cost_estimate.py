#!/usr/bin/env python3
"""Cost per request and per month of the mesh's Lambda functions on AWS, from measured durations.

Reads lambda/deploy/measured.json (memory and measured warm / cold billed milliseconds per
function, plus traffic assumptions) and prints Markdown tables: per function the cost of one
request (Lambda requests + duration + ephemeral storage, API Gateway REST, DynamoDB on-demand
writes/reads of the stored result, Kinesis PUT payload units, CloudWatch Logs ingestion, X-Ray
traces) and per month, then the fixed monthly costs (Kinesis shard-hours, dashboard, alarms,
provisioned concurrency) and the total against the budget.

    python3 scripts/cost_estimate.py [--measured FILE] [--allow-missing]
        [--requests-per-month N] [--architecture arm64|x86_64]

Functions whose warm_ms / cold_ms are null are refused (exit 2) unless --allow-missing, which
prices everything but their Lambda duration and says so. Free tiers are not applied.
Standard library only.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

# Public list prices, us-east-1, USD, as published on the AWS pricing pages in 2025 (Lambda,
# API Gateway, DynamoDB after the November 2024 on-demand price cut, Kinesis Data Streams,
# CloudWatch, X-Ray). Re-check before relying on the numbers.
PRICES_AS_OF = "2025 (us-east-1 list prices)"
LAMBDA_GB_SECOND = {"x86_64": 0.0000166667, "arm64": 0.0000133334}  # first pricing tier
LAMBDA_PROVISIONED_GB_SECOND = {"x86_64": 0.0000041667, "arm64": 0.0000033334}
LAMBDA_PER_REQUEST = 0.20 / 1e6
LAMBDA_EPHEMERAL_GB_SECOND = 0.0000000309  # storage beyond the free 512 MB
LAMBDA_FREE_EPHEMERAL_MB = 512
APIGW_REST_PER_REQUEST = 3.50 / 1e6  # first 333 million a month
DYNAMODB_PER_WRITE_UNIT = 0.625 / 1e6  # on-demand write request unit (1 KB)
DYNAMODB_PER_READ_UNIT = 0.125 / 1e6  # on-demand read request unit (4 KB strongly consistent)
DYNAMODB_WRITE_UNIT_BYTES = 1024
KINESIS_PER_PUT_PAYLOAD_UNIT = 0.014 / 1e6  # 25 KB units
KINESIS_PUT_PAYLOAD_UNIT_BYTES = 25 * 1024
KINESIS_SHARD_HOUR = 0.015
CLOUDWATCH_LOGS_PER_GB = 0.50  # ingestion, standard class
XRAY_PER_TRACE = 5.00 / 1e6  # traces recorded
CLOUDWATCH_DASHBOARD_MONTH = 3.00
CLOUDWATCH_ALARM_METRIC_MONTH = 0.10  # standard resolution, per metric in an alarm
HOURS_PER_MONTH = 730
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600
# The two functions the template gives provisioned concurrency (CriticalProvisionedConcurrency).
# Requests they serve on provisioned instances are billed at a lower duration rate; this script
# prices every request at the on-demand rate (an upper bound).
CRITICAL_FUNCTIONS = ("msp-threat-intelligence", "msp-nlp-query")

DEFAULT_MEASURED = Path(__file__).resolve().parent.parent / "lambda" / "deploy" / "measured.json"


class InputError(Exception):
    pass


def number(settings: dict, key: str, where: str, minimum: float = 0.0) -> float:
    value = settings.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise InputError(f"{where}: `{key}` must be a number >= {minimum:g}, got {value!r}")
    return float(value)


def billed_ms(fn: dict, cold_fraction: float) -> float | None:
    """Blended billed milliseconds of one request, None when a needed measurement is missing."""
    warm, cold = fn.get("warm_ms"), fn.get("cold_ms")
    if warm is None or (cold is None and cold_fraction > 0):
        return None
    cold = warm if cold is None else cold
    # Lambda bills whole milliseconds.
    return (1 - cold_fraction) * math.ceil(warm) + cold_fraction * math.ceil(cold)


def request_shares(functions: dict) -> dict[str, float]:
    given = {name: fn.get("overrides", {}).get("request_share") for name, fn in functions.items()}
    explicit = {n: s for n, s in given.items() if s is not None}
    for name, share in explicit.items():
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
            raise InputError(f"{name}: overrides.request_share must be within 0..1, got {share!r}")
    rest = 1.0 - sum(explicit.values())
    if rest < -1e-9:
        raise InputError("request_share overrides add up to more than 1")
    others = [n for n in functions if n not in explicit]
    return {n: explicit.get(n, rest / len(others) if others else 0.0) for n in functions}


def per_request(name: str, fn: dict, a: dict) -> dict[str, float | None]:
    """Cost of one request of function `name`, by component (USD)."""
    arch = a["architecture"]
    memory_gb = number(fn, "memory_mb", name, 128) / 1024
    cold_fraction = number(a, "cold_start_fraction", name)
    ms = billed_ms(fn, cold_fraction)
    extra_storage_gb = max(0.0, number(a, "ephemeral_storage_mb", name) - LAMBDA_FREE_EPHEMERAL_MB) / 1024
    if ms is None:
        duration = None
    else:
        seconds = ms / 1000
        duration = seconds * (memory_gb * LAMBDA_GB_SECOND[arch] + extra_storage_gb * LAMBDA_EPHEMERAL_GB_SECOND)
    write_units = number(a, "dynamodb_items_written_per_request", name) * math.ceil(
        number(a, "result_item_bytes", name, 1) / DYNAMODB_WRITE_UNIT_BYTES
    )
    put_units = number(a, "kinesis_records_per_request", name) * math.ceil(
        number(a, "event_bytes", name, 1) / KINESIS_PUT_PAYLOAD_UNIT_BYTES
    )
    return {
        "lambda_requests": LAMBDA_PER_REQUEST,
        "lambda_duration": duration,
        "api_gateway": APIGW_REST_PER_REQUEST,
        "dynamodb": write_units * DYNAMODB_PER_WRITE_UNIT
        + number(a, "dynamodb_read_units_per_request", name) * DYNAMODB_PER_READ_UNIT,
        "kinesis": put_units * KINESIS_PER_PUT_PAYLOAD_UNIT,
        "logs": number(a, "log_bytes_per_request", name) / 1024**3 * CLOUDWATCH_LOGS_PER_GB,
        "xray": number(a, "xray_traced_fraction", name) * XRAY_PER_TRACE,
    }


def fixed_monthly(assumptions: dict, functions: dict) -> dict[str, float]:
    arch = assumptions["architecture"]
    pc = number(assumptions, "provisioned_concurrency_per_critical_function", "assumptions")
    pc_gb = sum(number(functions[n], "memory_mb", n, 128) / 1024 for n in CRITICAL_FUNCTIONS if n in functions)
    return {
        "Kinesis shard-hours": number(assumptions, "kinesis_shards", "assumptions") * HOURS_PER_MONTH * KINESIS_SHARD_HOUR,
        "CloudWatch dashboard": number(assumptions, "cloudwatch_dashboards", "assumptions") * CLOUDWATCH_DASHBOARD_MONTH,
        "CloudWatch alarms": number(assumptions, "cloudwatch_alarm_metrics", "assumptions") * CLOUDWATCH_ALARM_METRIC_MONTH,
        "Provisioned concurrency": pc * pc_gb * SECONDS_PER_MONTH * LAMBDA_PROVISIONED_GB_SECOND[arch],
    }


COMPONENTS = [
    ("lambda_requests", "Lambda requests"),
    ("lambda_duration", "Lambda duration + /tmp"),
    ("api_gateway", "API Gateway REST"),
    ("dynamodb", "DynamoDB on-demand"),
    ("kinesis", "Kinesis PUT units"),
    ("logs", "CloudWatch Logs"),
    ("xray", "X-Ray traces"),
]


def usd(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"${value:,.{digits}f}"


def ms_text(value) -> str:
    return "null" if value is None else f"{value:g}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--measured", type=Path, default=DEFAULT_MEASURED, help="measured.json to read")
    parser.add_argument("--allow-missing", action="store_true", help="price functions without measurements (their Lambda duration is left out)")
    parser.add_argument("--requests-per-month", type=float, help="override assumptions.requests_per_month")
    parser.add_argument("--architecture", choices=sorted(LAMBDA_GB_SECOND), help="override assumptions.architecture")
    args = parser.parse_args(argv)

    try:
        data = json.loads(args.measured.read_text())
    except (OSError, json.JSONDecodeError) as e:
        print(f"cost_estimate: cannot read {args.measured}: {e}", file=sys.stderr)
        return 2
    functions: dict = data.get("functions") or {}
    assumptions: dict = dict(data.get("assumptions") or {})
    if args.requests_per_month is not None:
        assumptions["requests_per_month"] = args.requests_per_month
    if args.architecture:
        assumptions["architecture"] = args.architecture
    if not functions:
        print(f"cost_estimate: {args.measured} lists no functions", file=sys.stderr)
        return 2
    if assumptions.get("architecture") not in LAMBDA_GB_SECOND:
        print(f"cost_estimate: assumptions.architecture must be one of {sorted(LAMBDA_GB_SECOND)}", file=sys.stderr)
        return 2

    try:
        cold_fraction = number(assumptions, "cold_start_fraction", "assumptions")
        missing = [n for n, fn in functions.items() if billed_ms(fn, fn.get("overrides", {}).get("cold_start_fraction", cold_fraction)) is None]
        if missing and not args.allow_missing:
            print(
                "cost_estimate: no measured warm_ms/cold_ms for " + ", ".join(missing)
                + f"; fill them in {args.measured} or pass --allow-missing",
                file=sys.stderr,
            )
            return 2
        total_requests = number(assumptions, "requests_per_month", "assumptions")
        shares = request_shares(functions)
        rows = []
        for name, fn in functions.items():
            a = {**assumptions, **{k: v for k, v in fn.get("overrides", {}).items() if k != "request_share"}}
            costs = per_request(name, fn, a)
            requests = total_requests * shares[name]
            known = sum(v for v in costs.values() if v is not None)
            rows.append((name, fn, requests, costs, known))
        fixed = fixed_monthly(assumptions, functions)
    except InputError as e:
        print(f"cost_estimate: {e}", file=sys.stderr)
        return 2

    out = print
    out(f"# Cost estimate ({assumptions['architecture']}, prices: {PRICES_AS_OF}; measured on: {data.get('measured_on') or 'not yet'})\n")
    out(f"{total_requests:,.0f} REST requests a month, cold-start fraction {cold_fraction:g}; no free tier applied.\n")
    out("| function | memory MB | warm ms | cold ms | requests / month | per request | per month |")
    out("|---|---:|---:|---:|---:|---:|---:|")
    for name, fn, requests, costs, known in rows:
        flag = "" if costs["lambda_duration"] is not None else " (no duration)"
        out(
            f"| {name} | {fn.get('memory_mb')} | {ms_text(fn.get('warm_ms'))} | {ms_text(fn.get('cold_ms'))} "
            f"| {requests:,.0f} | {usd(known, 8)}{flag} | {usd(known * requests)}{flag} |"
        )
    variable = sum(known * requests for _, _, requests, _, known in rows)
    mean = variable / total_requests if total_requests else 0.0
    out(f"| **total** | | | | **{total_requests:,.0f}** | **{usd(mean, 8)}** (mean) | **{usd(variable)}** |\n")

    out("| component | per request (mean) | per month |")
    out("|---|---:|---:|")
    for key, label in COMPONENTS:
        values = [(costs[key], requests) for _, _, requests, costs, _ in rows]
        month = sum(v * r for v, r in values if v is not None)
        note = "" if all(v is not None for v, _ in values) else " (measured functions only)"
        out(f"| {label}{note} | {usd(month / total_requests if total_requests else 0.0, 8)} | {usd(month)} |")
    out("")

    out("| fixed monthly cost | per month |")
    out("|---|---:|")
    for label, value in fixed.items():
        out(f"| {label} | {usd(value)} |")
    fixed_total = sum(fixed.values())
    out(f"| **total fixed** | **{usd(fixed_total)}** |\n")

    grand = variable + fixed_total
    budget = assumptions.get("monthly_budget_usd")
    line = f"**Estimated month: {usd(grand)}**"
    if isinstance(budget, (int, float)) and budget > 0:
        line += f" ({grand / budget:.0%} of the ${budget:,.0f} budget)"
    out(line)
    if missing:
        out(f"\nNot measured, Lambda duration left out: {', '.join(missing)}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
