# The reporter's image: the report job runs in it with nothing to install.
# Built by the project's pipeline on each release tag from the wheel its build job made
# (docker build --build-arg VERSION=1.2.3 .), and published as
# registry.gitlab.com/databand-gitlab-reporter/databand-gitlab-reporter:<version>, the image the
# component uses by default at that version.
FROM python:3.12-slim

# No default: the version names the wheel to install. The check runs before anything is
# installed, so a build without it (or with a version dist/ has no wheel of) stops with one line
# that says what to pass.
ARG VERSION
COPY dist/ /tmp/dist/
# Wheels only, nothing compiled; no pip cache left in the image.
RUN wheel="/tmp/dist/databand_gitlab_reporter-${VERSION}-py3-none-any.whl" \
    && { [ -n "$VERSION" ] && [ -f "$wheel" ] || { echo "Dockerfile: no wheel for VERSION='${VERSION}': build with --build-arg VERSION=X.Y.Z naming a wheel python -m build wrote to dist/ (dist/ holds: $(ls /tmp/dist | tr "\n" " "))" >&2; exit 1; }; } \
    && python -m pip install --no-cache-dir --disable-pip-version-check --only-binary :all: "$wheel" \
    && rm -rf /tmp/dist \
    && databand-gitlab-reporter --version

# GitLab's runner runs the job's script in a shell: no entrypoint of ours in the way.
ENTRYPOINT []
CMD ["databand-gitlab-reporter", "--help"]
