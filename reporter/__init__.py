"""databand-gitlab-reporter: report a GitLab pipeline to IBM Databand as OpenLineage run events.

The package reads as the data flows:
settings -> gitlab (GitLab's API; gitlab.parse turns its JSON into the snapshot) -> snapshot ->
status (GitLab's rules) -> events (plain data, facets) -> delivery (to every target of targets.py,
the protocol and its registry: databand.py, transports.py for other OpenLineage backends; what a
target did not accept goes to a file of eventfiles.py), with report.py (the library's entry points)
and backfill.py (many pipelines) on top, process.py (signals, exit codes), and cli.py, which parses,
calls and prints.
"""

__version__ = "0.1.0"

PROG = "databand-gitlab-reporter"  # the command, as messages and hints name it
PROJECT_URL = "https://gitlab.com/databand-gitlab-reporter/databand-gitlab-reporter"
# Release tags are bare semantic versions (1.2.3), as the CI/CD catalog wants them.
PRODUCER = f"{PROJECT_URL}/-/tree/{__version__}"
