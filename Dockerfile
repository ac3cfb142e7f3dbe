# syntax=docker/dockerfile:1
# One image for every simgate process; docker-compose.yml chooses the role by `command`:
#   api      simgate api --host 0.0.0.0 --port 8000
#   worker   simgate worker --queues vision,default --concurrency 2
#   beat     simgate beat
#   lookup   python -m services.lookup --registry fixtures/orders/registry.json --host 0.0.0.0 --port 8001
#   flower   celery --app services.workers.celery_app:app flower --port=5555
#   migrate  simgate db upgrade
# There is no HEALTHCHECK here: worker and beat serve no HTTP. The compose file checks the
# api and the lookup with `python -c` and urllib (the image has no curl).
#
#   docker build -t simgate .

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: a virtual environment in /opt/venv, from prebuilt wheels only (no compiler) ----
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install --upgrade "pip>=24"
WORKDIR /src

# The dependencies get their own layer, so that a code change does not reinstall them.
# Flower is an operations tool of the image only, not a dependency of the project.
COPY pyproject.toml ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep=chr(10))" > requirements.txt \
 && pip install -r requirements.txt "flower==2.2.0"
# face_recognition declares a source build of dlib; the dlib-bin wheel installed above
# provides the module, so it goes in without its dependencies (as scripts/bootstrap.sh does).
RUN pip install --no-deps "face_recognition==1.3.0"

COPY README.md ./
COPY vision/ vision/
COPY services/ services/
# Not editable: the processes run the installed package, so missing package data fails here.
RUN pip install --no-deps .

# ---- runtime ----
FROM ${PYTHON_IMAGE} AS runtime
# libzbar0: pyzbar (ctypes). The fonts: the synthetic card generator (fixtures, demo).
# opencv-python-headless, onnxruntime, dlib-bin and psycopg[binary] bundle their libraries
# (they need nothing beyond libc, libstdc++ and zlib, all in the slim image).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libzbar0 fonts-noto-cjk fonts-dejavu-core \
 && rm -rf /var/lib/apt/lists/*

# A fixed uid, so that volumes keep their owner across rebuilds. /var/lib/simgate holds the
# encrypted blobs; a named volume mounted there starts with this owner and mode.
RUN groupadd --system --gid 10001 simgate \
 && useradd --system --uid 10001 --gid simgate --create-home --home-dir /home/simgate \
        --shell /usr/sbin/nologin simgate \
 && install -d -o simgate -g simgate -m 0700 /var/lib/simgate

COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SIMGATE_DATA_DIR=/var/lib/simgate

# The working directory holds only the fixtures (the lookup's registry, demo data), read-only
# for the service user; the code is the installed package.
WORKDIR /app
COPY fixtures/ fixtures/

USER simgate
# Fail the build, not the first request, when a native library or a model is missing.
RUN python -c "import face_recognition, rapidocr, cv2, pyzbar.pyzbar, zxingcpp, flower, psycopg" \
 && simgate --help > /dev/null

EXPOSE 8000 8001 5555
CMD ["simgate", "api", "--host", "0.0.0.0", "--port", "8000"]
