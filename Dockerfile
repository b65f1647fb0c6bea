# CPU image of the dashboard, serving the built-in offline demo on port 8501.
#
#   docker build -t pathology-dashboard .
#   docker run -p 127.0.0.1:8501:8501 -v $PWD/data:/app/data pathology-dashboard
#
# Who can reach it is decided by `-p`: inside the container the dashboard listens on 0.0.0.0
# (a server bound to the container's own 127.0.0.1 cannot be reached through a published port),
# so `-p 127.0.0.1:8501:8501` keeps it on this machine, as `make run` does, and
# `-p 8501:8501` serves the network: turn on sign-in first by mounting a secrets file,
#   -v $PWD/.streamlit/secrets.toml:/app/.streamlit/secrets.toml:ro
# (see .streamlit/secrets.toml.example; the image never contains secrets).
#
# GPU variant: build on TensorFlow's CUDA image instead (same TensorFlow version as
# requirements.txt; needs the NVIDIA container toolkit on the host):
#
#   docker build --build-arg BASE_IMAGE=tensorflow/tensorflow:2.21.0-gpu -t pathology-dashboard:gpu .
#   docker run --gpus all -p 127.0.0.1:8501:8501 -v $PWD/data:/app/data pathology-dashboard:gpu
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DASHBOARD_DATA_DIR=/app/data

WORKDIR /app
COPY requirements.txt .
RUN python -m pip install --upgrade pip && python -m pip install -r requirements.txt

# config.toml only: a developer's secrets.toml must never end up in an image.
COPY .streamlit/config.toml .streamlit/config.toml
COPY dashboard dashboard
COPY pages pages
COPY services services

RUN python -m services.datasets.demo

# config.toml says 127.0.0.1; in a container that would be unreachable through -p (see above).
ENV STREAMLIT_SERVER_ADDRESS=0.0.0.0
EXPOSE 8501
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health')"
CMD ["python", "-m", "streamlit", "run", "dashboard/app.py", "--server.port=8501"]
