# The reporter's image: the report job runs in it with nothing to install.
# Built by the project's pipeline on each release tag from the wheel its build job made
# (docker build --build-arg VERSION=1.2.3 .), and published as
# registry.gitlab.com/databand-gitlab-reporter/databand-gitlab-reporter:<version>, the image the
# component uses by default at that version.
FROM python:3.12-slim

ARG VERSION
COPY dist/databand_gitlab_reporter-${VERSION}-py3-none-any.whl /tmp/
# Wheels only, nothing compiled; no pip cache left in the image.
RUN python -m pip install --no-cache-dir --disable-pip-version-check --only-binary :all: \
        "/tmp/databand_gitlab_reporter-${VERSION}-py3-none-any.whl" \
    && rm /tmp/*.whl \
    && databand-gitlab-reporter --version

# GitLab's runner runs the job's script in a shell: no entrypoint of ours in the way.
ENTRYPOINT []
CMD ["databand-gitlab-reporter", "--help"]
