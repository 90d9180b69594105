# syntax=docker/dockerfile:1
# One multi-stage Dockerfile, three images (cloudbuild.yaml builds and pushes all of them):
#   trainer          TensorFlow GPU base running `python -m trainer.task` (Vertex AI custom jobs)
#   pipeline-worker  Beam's Python SDK base with the project baked in (Dataflow --sdk_container_image
#                    for pipeline.run and serving.beam_colorize)
#   serving          TensorFlow Serving with an exported model copied in (REST on 8501)
# TF_VERSION and BEAM_VERSION are the pins of setup.py; tests/test_containers.py holds them equal.
# TF_SERVING_VERSION is pinned on its own: TF Serving releases trail TensorFlow's (2.20.0 is the
# newest that exists; 2.21 support is tensorflow/serving#4130). The export must run on it:
# tests/test_serving_runtime.py loads an export into tensorflow-cpu of this version and compares.
ARG TF_VERSION=2.21.0
ARG TF_SERVING_VERSION=2.20.0
ARG BEAM_VERSION=2.77.0
ARG PYTHON_VERSION=3.11

# The project's source, once, for the Python stages.
FROM scratch AS source
COPY setup.py README.md /koala/
COPY koala /koala/koala
COPY pipeline /koala/pipeline
COPY trainer /koala/trainer
COPY serving /koala/serving

FROM tensorflow/tensorflow:${TF_VERSION}-gpu AS trainer
WORKDIR /koala
COPY --from=source /koala /koala
RUN pip install --no-cache-dir /koala
ENTRYPOINT ["python", "-m", "trainer.task"]

FROM apache/beam_python${PYTHON_VERSION}_sdk:${BEAM_VERSION} AS pipeline-worker
# For Dataflow GPU workers: --build-arg TF_PACKAGE="tensorflow[and-cuda]==2.21.0"
ARG TF_PACKAGE=""
WORKDIR /koala
COPY --from=source /koala /koala
RUN pip install --no-cache-dir /koala ${TF_PACKAGE}
# On GPU workers each SDK process loads its own model: none may claim the whole GPU's memory.
ENV TF_FORCE_GPU_ALLOW_GROWTH=true
# The base image's ENTRYPOINT (/opt/apache/beam/boot, Beam's SDK harness) stays as it is.

# Build after `python -m trainer.export --export_dir=models/koala` (or let cloudbuild.yaml fetch
# models/koala from Cloud Storage).
FROM tensorflow/serving:${TF_SERVING_VERSION} AS serving
ENV MODEL_NAME=koala
COPY models/koala /models/koala
COPY serving/batching.config /models/batching.config
# The base image's entrypoint runs tensorflow_model_server with --rest_api_port=8501,
# --model_name=${MODEL_NAME} and --model_base_path=/models/${MODEL_NAME}; these add batching.
# It has no authentication and no body cap: publish it on loopback only,
#   docker run -p 127.0.0.1:8501:8501 ...
# and put a proxy with auth, body caps and rate limits in front of it (docs/security.md).
CMD ["--enable_batching=true", "--batching_parameters_file=/models/batching.config"]
