"""The facets Databand reads that OpenLineage does not define, as openlineage-python facet classes.

Their JSON schemas ship in reporter/schemas/ and their _schemaURL points at those files in this
project's repository, at this version's tag.
"""

from __future__ import annotations

import attr
from openlineage.client.generated.base import RunFacet
from openlineage.client.generated.tags_run import TagsRunFacet
from openlineage.client.generated.test_run import TestRunFacet

from reporter import PROJECT_URL, __version__

SCHEMA_BASE = f"{PROJECT_URL}/-/raw/{__version__}/reporter/schemas"


@attr.define
class StartTimeRunFacet(RunFacet):
    """Databand's `startTime`: when the run really started (nominalTime is when it was due)."""

    startTime: str  # noqa: N815

    @staticmethod
    def _get_schema() -> str:
        return f"{SCHEMA_BASE}/StartTimeRunFacet.json#/$defs/StartTimeRunFacet"


@attr.define
class LogRunFacet(RunFacet):
    """Databand's `log`: the end of the job log and where to read all of it."""

    logBody: str  # noqa: N815
    logUrl: str | None = attr.field(default=None)  # noqa: N815

    @staticmethod
    def _get_schema() -> str:
        return f"{SCHEMA_BASE}/LogRunFacet.json#/$defs/LogRunFacet"


@attr.define
class GitLabTestRunFacet(TestRunFacet):
    """OpenLineage's `test` run facet, with the suite's complete counts beside the (capped) cases.

    The extra keys keep it a valid TestRunFacet, so its schema URL is that one.
    """

    counts: dict = attr.field(factory=dict)
    suite: str | None = attr.field(default=None)
    sharedBy: int = attr.field(default=1)  # noqa: N815  (parallel jobs share one suite)


@attr.define
class DatabandTagsRunFacet(TagsRunFacet):
    """OpenLineage's `tags` run facet plus the two keys Databand reads on the root run.

    It stays a valid TagsRunFacet (facets allow extra properties), so its schema URL is that one.
    """

    projectName: str | None = attr.field(default=None)  # noqa: N815
    runName: str | None = attr.field(default=None)  # noqa: N815
