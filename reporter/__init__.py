"""databand-gitlab-reporter: report a GitLab pipeline to IBM Databand as OpenLineage run events.

The package reads as the data flows:
settings -> reader (GitLab) -> snapshot -> status -> events -> delivery, with cli.py on top.
"""

__version__ = "0.1.0"

PROJECT_URL = "https://gitlab.com/databand-gitlab-reporter/databand-gitlab-reporter"
# Release tags are bare semantic versions (1.2.3), as the CI/CD catalog wants them.
PRODUCER = f"{PROJECT_URL}/-/tree/{__version__}"
