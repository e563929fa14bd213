"""The facets the reporter sends, as plain JSON data: OpenLineage's own and the two Databand reads.

Each facet carries its producer and the schema it follows. Databand's `startTime` and `log` are not
defined by OpenLineage: their schemas ship in reporter/schemas/ and are linked at this version's tag.
The tests validate every facet against the schema its `_schemaURL` names.
"""

from __future__ import annotations

from reporter import PRODUCER, PROJECT_URL, __version__

SPEC = "https://openlineage.io/spec"
RUN_EVENT_SCHEMA = f"{SPEC}/2-0-2/OpenLineage.json#/$defs/RunEvent"
OWN_SCHEMAS = f"{PROJECT_URL}/-/raw/{__version__}/reporter/schemas"


def _facet(schema: str, fields: dict) -> dict:
    """A facet as OpenLineage writes it: producer and schema first, then the fields that are set."""
    facet = {"_producer": PRODUCER, "_schemaURL": schema}
    facet.update((key, value) for key, value in fields.items() if value is not None)
    return facet


def nominal_time(start: str) -> dict:
    return _facet(f"{SPEC}/facets/1-0-1/NominalTimeRunFacet.json#/$defs/NominalTimeRunFacet",
                  {"nominalStartTime": start})


def start_time(start: str) -> dict:
    """Databand's `startTime`: when the run really started (nominalTime is when it was due)."""
    return _facet(f"{OWN_SCHEMAS}/StartTimeRunFacet.json#/$defs/StartTimeRunFacet", {"startTime": start})


def tags(pairs: dict[str, str], project_name: str | None = None, run_name: str | None = None) -> dict:
    """OpenLineage's `tags` run facet; on the root run also the two keys Databand reads (facets allow
    extra properties, so it stays a valid TagsRunFacet)."""
    return _facet(f"{SPEC}/facets/1-0-0/TagsRunFacet.json#/$defs/TagsRunFacet", {
        "tags": [{"key": key, "value": value, "source": "GITLAB"} for key, value in pairs.items()],
        "projectName": project_name, "runName": run_name})


def _run_ref(run_id: str, namespace: str, name: str) -> dict:
    return {"run": {"runId": run_id, "facets": {}}, "job": {"namespace": namespace, "name": name, "facets": {}}}


def parent(namespace: str, run_id: str, name: str, root_run_id: str, root_name: str) -> dict:
    return _facet(f"{SPEC}/facets/1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet", {
        **_run_ref(run_id, namespace, name), "root": _run_ref(root_run_id, namespace, root_name)})


def error_message(message: str) -> dict:
    return _facet(f"{SPEC}/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet",
                  {"message": message, "programmingLanguage": "shell"})


def log(body: str, url: str | None) -> dict:
    """Databand's `log`: the end of the job log and where to read all of it."""
    return _facet(f"{OWN_SCHEMAS}/LogRunFacet.json#/$defs/LogRunFacet", {"logBody": body, "logUrl": url})


def test(tests: list[dict], counts: dict, suite: str | None, shared_by: int) -> dict:
    """OpenLineage's `test` run facet, with the suite's complete counts beside the (capped) cases;
    the extra keys keep it a valid TestRunFacet."""
    return _facet(f"{SPEC}/facets/1-0-1/TestRunFacet.json#/$defs/TestRunFacet",
                  {"tests": tests, "counts": counts, "suite": suite, "sharedBy": shared_by})


def job_type(kind: str) -> dict:
    return _facet(f"{SPEC}/facets/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet",
                  {"processingType": "BATCH", "integration": "GITLAB", "jobType": kind})


def source_code_location(project_url: str, sha: str, ref: str, is_tag: bool) -> dict:
    return _facet(f"{SPEC}/facets/1-1-0/SourceCodeLocationJobFacet.json#/$defs/SourceCodeLocationJobFacet", {
        "type": "git", "url": f"{project_url}/-/tree/{sha}", "repoUrl": f"{project_url}.git", "version": sha,
        ("tag" if is_tag else "branch"): ref})


# processing_engine needs a version: this stands in where GitLab's could not be read.
UNKNOWN_VERSION = "unknown"


def processing_engine(gitlab_version: str) -> dict:
    """What ran the run: GitLab at its version, reported by this reporter (the adapter). Consumers
    such as DataHub refuse events from a producer they do not know unless this facet is there."""
    return _facet(f"{SPEC}/facets/1-1-1/ProcessingEngineRunFacet.json#/$defs/ProcessingEngineRunFacet",
                  {"version": gitlab_version, "name": "GitLab", "openlineageAdapterVersion": __version__})


# GitLab's `needs` and trigger jobs in JobDependenciesRunFacet's words: a job that needs another
# starts once that one finished; a bridge starts its downstream pipeline itself.
FINISH_TO_START = "FINISH_TO_START"
START_TO_START = "START_TO_START"  # a bridge and the pipeline it starts
DIRECT_INVOCATION = "DIRECT_INVOCATION"


def dependency(namespace: str, name: str, run_id: str | None = None, *, dependency_type: str | None = None,
               sequence_trigger_rule: str | None = FINISH_TO_START, status_trigger_rule: str | None = None) -> dict:
    """One entry of jobDependencies' upstream or downstream: the job, its run when known, and the
    rules where they are known (all optional in the schema but the job)."""
    entry: dict = {"job": {"namespace": namespace, "name": name}}
    if run_id:
        entry["run"] = {"runId": run_id}
    if dependency_type:
        entry["dependency_type"] = dependency_type
    if sequence_trigger_rule:
        entry["sequence_trigger_rule"] = sequence_trigger_rule
    if status_trigger_rule:
        entry["status_trigger_rule"] = status_trigger_rule
    return entry


def job_dependencies(upstream: list[dict], downstream: list[dict] | None = None,
                     trigger_rule: str | None = None) -> dict:
    """OpenLineage's `jobDependencies` run facet from entries made by dependency(). The schema's
    field is `dependency_type` (its docs' example writes `type`)."""
    return _facet(f"{SPEC}/facets/1-0-1/JobDependenciesRunFacet.json#/$defs/JobDependenciesRunFacet",
                  {"upstream": upstream, "downstream": downstream or None, "trigger_rule": trigger_rule})
