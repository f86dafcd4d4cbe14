# SAM-ON Lab in one image: the Streamlit app, and (same image, another command) the queue workers.
#
# One container (the app starts its own worker; add --gpus all to train on the GPUs):
#   docker build -t samon-lab .
#   docker run --gpus all -p 8501:8501 -v samon-runs:/app/runs -v samon-data:/app/data samon-lab
# A workshop server (app + GPU workers + PostgreSQL): `docker compose up -d` (compose.yaml).
# Several machines: docs/deployment.md.
#
# torch==2.14.1 from requirements.txt is a CUDA build: with the NVIDIA container toolkit and
# `--gpus all` it uses the host's GPUs, without them it runs on the CPU.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SAMON_RUNS_DIR=/app/runs \
    SAMON_DATA_DIR=/app/data \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

WORKDIR /app

# The dependencies first, in their own layer: a code change does not reinstall torch.
COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY pyproject.toml README.md ./
COPY samon_core ./samon_core
COPY samon_app ./samon_app
COPY app.py ./
COPY app_pages ./app_pages
COPY .streamlit ./.streamlit
# --no-deps: the dependencies are pinned above; this only makes samon_core importable everywhere.
RUN pip install --no-deps -e . \
    && useradd --create-home --uid 1000 --user-group samon \
    && mkdir -p /app/runs /app/data \
    && chown samon:samon /app/runs /app/data

USER samon
EXPOSE 8501
# The run store (run folders, checkpoints; samon.db, the database, unless SAMON_DATABASE_URL
# names a PostgreSQL server) and the datasets outlive the container.
VOLUME ["/app/runs", "/app/data"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4)"]
CMD ["streamlit", "run", "app.py", "--server.address=0.0.0.0", "--server.port=8501"]
