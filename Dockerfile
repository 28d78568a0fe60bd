# preflight: a database preflight check for Django apps (see README.md).
#
#   docker build -t preflight .
#   docker run --rm -e SQL_HOST=db -e SQL_DATABASE=app -e SQL_USER=app preflight explain
#
# The base is Python 3.13 on Debian 13 (trixie), pinned by digest (the
# multi-platform index, so amd64 and arm64 builds get the same release); both
# stages must use the same base, since the venv links to the base's python3.
# To bump it (docs/deployment.md, "The container image"):
#   docker buildx imagetools inspect python:3.13-slim-trixie
# and put the "Digest:" it prints after the @ below. The image workflow checks
# that the pinned digest is an index holding linux/amd64 and linux/arm64.
ARG BASE_IMAGE=python:3.13-slim-trixie@sha256:ffb752e139c0a19692a43af8d8523b274222dd68eebad5d583b45c2201c6e30a

FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/preflight
# Dependencies in their own layer: rebuilt only when the lock file changes.
COPY requirements/runtime.txt requirements/build.txt /tmp/
RUN /opt/preflight/bin/pip install --no-deps --require-hashes -r /tmp/runtime.txt \
 && /opt/preflight/bin/pip install --no-deps --require-hashes -r /tmp/build.txt
COPY pyproject.toml README.md /src/
COPY preflight /src/preflight
# Install the package (the extra "check" names the dependencies locked above)
# with the locked setuptools (no unpinned download), compile all
# bytecode once (unchecked-hash: valid on a read-only root filesystem), then drop
# the installers, which the check does not need.
RUN /opt/preflight/bin/pip install --no-deps --no-build-isolation --no-compile "/src[check]" \
 && /opt/preflight/bin/pip uninstall --yes pip setuptools \
 && find /opt/preflight -name '__pycache__' -prune -exec rm -rf {} + \
 && /opt/preflight/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash \
      /opt/preflight/lib

FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="django-db-preflight" \
      org.opencontainers.image.description="Database preflight check for Django apps"
COPY --from=build /opt/preflight /opt/preflight
ENV PATH=/opt/preflight/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PREFLIGHT_LOG_FORMAT=json
# A numeric UID/GID so Kubernetes can verify runAsNonRoot without a passwd entry.
USER 10001:10001
ENTRYPOINT ["preflight"]
