# CPU image of the dashboard, serving the built-in offline demo on port 8501.
#
#   docker build -t pathology-dashboard .
#   docker run -p 8501:8501 -v $PWD/data:/app/data pathology-dashboard
#
# GPU variant: build on TensorFlow's CUDA image instead (same TensorFlow version as
# requirements.txt; needs the NVIDIA container toolkit on the host):
#
#   docker build --build-arg BASE_IMAGE=tensorflow/tensorflow:2.21.0-gpu -t pathology-dashboard:gpu .
#   docker run --gpus all -p 8501:8501 -v $PWD/data:/app/data pathology-dashboard:gpu
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DASHBOARD_DATA_DIR=/app/data

WORKDIR /app
COPY requirements.txt .
RUN python -m pip install --upgrade pip && python -m pip install -r requirements.txt

COPY .streamlit .streamlit
COPY dashboard dashboard
COPY pages pages
COPY services services

RUN python -m services.datasets.demo

EXPOSE 8501
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health')"
CMD ["python", "-m", "streamlit", "run", "dashboard/app.py", "--server.port=8501", "--server.address=0.0.0.0"]
