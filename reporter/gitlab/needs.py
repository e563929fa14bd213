"""GitLab's `needs` graph, which its REST API does not give: one paginated GraphQL query per pipeline.

What GitLab's GraphQL types say (app/graphql/types/ci/ in GitLab's source):
- `Project.pipeline(iid:)` finds the pipeline; `Pipeline.jobs` (JobsResolver) lists every job and
  bridge, retried attempts too, newest first, as a cursor connection of at most 100 a page.
- `CiJob.needs` is a connection of `CiBuildNeed` {id, name}: the names of the jobs of the same
  pipeline it waits for (a parallel job's need is expanded to every "name i/n"). `needs:optional`
  and `artifacts:` are not there: they change what is fetched or whether a need exists, not the
  order. `CiJob.schedulingType` is "dag" for a job with `needs` (also `needs: []`), "stage" for
  one that waits for the previous stage.
- A job's `when` is no field, but JobsResolver filters on it (`whenExecuted`): the `on_failure`
  and `always` jobs are two more lists in the same query. Every other job (on_success, manual,
  delayed) runs only once what it waits for passed (an allowed failure counts as passed).
- GitLab answers a query it cannot run with 200 and an `errors` array (an unknown argument on an
  older GitLab, a pipeline it cannot find is `null` data). A CI_JOB_TOKEN is no credential for
  GraphQL (Gitlab::Auth::RequestAuthenticator: "CI_JOB_TOKENs are not allowed for now"): the
  endpoint answers 401 "Invalid token", so with a job token the query is not sent at all.

Every page goes through the reader's session (origin guard, requests-in-flight bound, the one
retry policy, the read's bound within the budget): a pipeline of n jobs costs ceil(n / 100)
requests, one after another (cursors), on one thread of the reader's pool while the REST pages
are read beside it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from reporter.gitlab import errors, http
from reporter.gitlab.errors import ReadError
from reporter.gitlab.http import Client
from reporter.snapshot import Job

PAGE = 100  # GitLab's default_max_page_size: a larger `first` is cut to it
MAX_PAGES = 50  # 5,000 jobs; past that the rest follow the stage order, and the summary says so
# The lists asked for, by alias: the jobs with their needs, and the jobs of each `when` that
# changes the status rule.
_JOB_FIELDS = f"id name schedulingType needs(first: {PAGE}) {{ pageInfo {{ hasNextPage }} nodes {{ name }} }}"
_LISTS = {"jobs": ("", _JOB_FIELDS),
          "onFailure": (', whenExecuted: ["on_failure"]', "id"),
          "always": (', whenExecuted: ["always"]', "id")}
_WHEN = {"onFailure": "on_failure", "always": "always"}


@dataclass
class Graph:
    """The needs of each job attempt by GitLab job id: a tuple of names (empty for `needs: []`),
    or None for a job that waits for the previous stage; `when` by id where it is on_failure or
    always, when GitLab could filter on it (`when_known`)."""

    needs: dict[int, tuple[str, ...] | None] = field(default_factory=dict)
    when: dict[int, str] = field(default_factory=dict)
    when_known: bool = True
    notes: list[str] = field(default_factory=list)


def query(lists: Mapping[str, object]) -> str:
    """The query for the next page of every list still open (`lists`: the aliases, to their cursors).
    Only variables used are declared: GraphQL refuses a declared one left unused."""
    declared = "".join(f", ${alias}: String" for alias in lists)
    selected = " ".join(
        f"{alias}: jobs(first: {PAGE}, after: ${alias}{_LISTS[alias][0]}) "
        f"{{ pageInfo {{ hasNextPage endCursor }} nodes {{ {_LISTS[alias][1]} }} }}" for alias in lists)
    return (f"query($path: ID!, $iid: ID!{declared}) {{ project(fullPath: $path) {{ "
            f"pipeline(iid: $iid) {{ {selected} }} }} }}")


class GraphQLRefused(Exception):
    """An answer with GitLab's `errors` array, or without the pipeline: the text says which."""


def job_id(gid: object) -> int | None:
    """GitLab's global id of a job, "gid://gitlab/Ci::Build/123" (Ci::Bridge for a bridge)."""
    tail = str(gid or "").rpartition("/")[2]
    return int(tail) if tail.isascii() and tail.isdigit() else None


def _connection(pipeline: Mapping, alias: str) -> tuple[list, str | None]:
    """A list's nodes and the cursor of its next page (None at its end)."""
    listing = pipeline.get(alias)
    if not isinstance(listing, Mapping):
        raise GraphQLRefused(f"the answer has no {alias} list")
    nodes, info = listing.get("nodes"), listing.get("pageInfo")
    if not isinstance(nodes, list) or not isinstance(info, Mapping):
        raise GraphQLRefused(f"the {alias} list is not a GraphQL connection")
    cursor = info.get("endCursor")
    return nodes, str(cursor) if info.get("hasNextPage") and cursor else None


def pipeline_of(answer: Mapping, what: str) -> Mapping:
    """The pipeline object of an answer, or GraphQLRefused with GitLab's first error."""
    problems = answer.get("errors")
    if problems:
        first = problems[0] if isinstance(problems, list) and problems else problems
        message = first.get("message") if isinstance(first, Mapping) else first
        raise GraphQLRefused(f"GitLab's GraphQL API answered: {str(message)[:200]}")
    data = answer.get("data")
    project = data.get("project") if isinstance(data, Mapping) else None
    if not isinstance(project, Mapping):
        raise GraphQLRefused(f"GitLab's GraphQL API found no project {what} (or the token may not read it)")
    pipeline = project.get("pipeline")
    if not isinstance(pipeline, Mapping):
        raise GraphQLRefused(f"GitLab's GraphQL API found no such pipeline in {what}")
    return pipeline


def add_page(graph: Graph, alias: str, nodes: list) -> None:
    """One page of a list into the graph."""
    for node in nodes:
        if not isinstance(node, Mapping) or (number := job_id(node.get("id"))) is None:
            continue
        if alias in _WHEN:
            graph.when[number] = _WHEN[alias]
            continue
        needs = node.get("needs")
        needs = needs if isinstance(needs, Mapping) else {}
        listed = needs.get("nodes")
        names = tuple(str(n["name"]) for n in (listed if isinstance(listed, list) else ())
                      if isinstance(n, Mapping) and n.get("name"))
        info = needs.get("pageInfo")
        if isinstance(info, Mapping) and info.get("hasNextPage"):
            graph.notes.append(f"the needs of job {node.get('name')!r} past its first {PAGE}")
        scheduling = node.get("schedulingType")
        # Without schedulingType (not asked of an older GitLab), a job with needs is a DAG job.
        dag = scheduling == "dag" or (scheduling is None and bool(names))
        graph.needs[number] = names if dag else None


def read(client: Client, project_path: str, iid: int, redact: Callable[[str], str] = lambda s: s) -> Graph:
    """The needs graph of one pipeline. Raises ReadError (the request failed) or GraphQLRefused."""
    graph = Graph()
    cursors: dict[str, str | None] = {alias: None for alias in _LISTS}
    url, pages = client.graphql_url(), 0
    while cursors:
        if pages == MAX_PAGES:
            graph.notes.append(f"the needs of the jobs past the first {MAX_PAGES * PAGE} (they follow the stage order)")
            break
        body = {"query": query(cursors), "variables": {"path": project_path, "iid": str(iid), **cursors}}
        answer = http.post_json(client, url, body).data
        assert isinstance(answer, dict)
        try:
            pipeline = pipeline_of(answer, project_path)
        except GraphQLRefused:
            if pages or "onFailure" not in cursors:
                raise
            # An older GitLab without JobsResolver's whenExecuted: once more without the `when`
            # lists; the status rules are then left out.
            graph.when_known = False
            cursors = {"jobs": None}
            continue
        pages += 1
        for alias in list(cursors):
            nodes, cursors[alias] = _connection(pipeline, alias)
            add_page(graph, alias, nodes)
        cursors = {alias: cursor for alias, cursor in cursors.items() if cursor is not None}
    graph.notes = [redact(note) for note in graph.notes]
    return graph


def apply(graph: Graph, jobs: list[Job]) -> None:
    """Each job attempt's needs and `when` from the graph; a job GraphQL did not list (created
    since) keeps the stage order."""
    for job in jobs:
        if job.id in graph.needs:
            job.needs = graph.needs[job.id]
            job.when = graph.when.get(job.id, "on_success") if graph.when_known else None


def read_or_note(client: Client, project_path: str, iid: int | None, redact: Callable[[str], str],
                 notes: list[str]) -> Graph | None:
    """The graph, or None with one line in `notes`: never a failed report."""
    fallback = "jobDependencies follow the stage order"
    if not client.access.token:
        notes.append(f"the needs graph ({fallback}: GitLab's GraphQL API does not take a CI_JOB_TOKEN; set "
                     "GITLAB_TOKEN (read_api) to add it)")
        return None
    if iid is None:
        notes.append(f"the needs graph ({fallback}: GitLab's pipeline object gave no iid to ask GraphQL by)")
        return None
    try:
        return read(client, project_path, iid, redact)
    except ReadError as error:
        why = errors.why(error)
    except GraphQLRefused as error:
        why = str(error)
    notes.append(f"the needs graph ({fallback}: POST {client.shown(client.graphql_url())}: {redact(why)})")
    return None
