"""The short summary a job log shows, folded into a collapsible GitLab log section."""

from __future__ import annotations

import time
from collections import Counter

SECTION = "databand_report"


def pipeline_status(events) -> str | None:
    """The pipeline's status as the root run's tags carry it, in GitLab's words."""
    if not events:
        return None
    tags = {t["key"]: t["value"] for t in events[0]["run"]["facets"].get("tags", {}).get("tags", [])}
    status = tags.get("gitlab.status")
    if status and "gitlab.warnings" in tags:
        return f"{status} with warnings"  # GitLab's "passed with warnings"
    return status


def lines(events: list[dict], pipeline_status: str | None, outcomes: list, notes: list[str]) -> list[str]:
    from reporter.packed import counts_of

    by_level: dict[str, Counter] = {}
    for (level, kind), runs in counts_of(events).items():
        by_level.setdefault(level, Counter())[kind] += runs
    out = [f"Pipeline status: {pipeline_status or 'unknown'}"]
    for level in ("PIPELINE", "STAGE", "JOB", "BRIDGE"):
        if level in by_level:
            counts = ", ".join(f"{k} {v}" for k, v in sorted(by_level[level].items()))
            out.append(f"{level.lower()} runs: {sum(by_level[level].values())} ({counts})")
    for outcome in outcomes:
        requests = f" in {outcome.requests} request{'s' if outcome.requests != 1 else ''}" if outcome.requests else ""
        out.append(f"Sent {outcome.sent} events{requests} to {outcome.target}")
    out.extend(notes)
    return out


def render(title: str, body: list[str], in_gitlab: bool) -> str:
    if not in_gitlab:
        return "\n".join([title, *("  " + line for line in body)])
    now = int(time.time())
    start = f"\x1b[0Ksection_start:{now}:{SECTION}[collapsed=true]\r\x1b[0K{title}"
    end = f"\x1b[0Ksection_end:{now}:{SECTION}\r\x1b[0K"
    return "\n".join([start, *body, end])
