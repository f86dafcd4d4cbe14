# A plain working image of the app: the Streamlit UI plus a local worker process.
# Build: docker build -t samon-lab .      Run: docker run -p 8501:8501 -v $PWD/runs:/app/runs samon-lab
# (GPU and multi-machine workshop deployments: see docs/deployment.md.)
FROM python:3.11-slim

WORKDIR /app
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    SAMON_RUNS_DIR=/app/runs \
    SAMON_DATA_DIR=/app/data

COPY requirements.txt .
RUN pip install -r requirements.txt

COPY pyproject.toml README.md ./
COPY samon_core ./samon_core
COPY app.py ./
COPY app_pages ./app_pages
COPY samon_app ./samon_app
COPY .streamlit ./.streamlit
RUN pip install --no-deps -e .

EXPOSE 8501
VOLUME ["/app/runs", "/app/data"]
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://localhost:8501/_stcore/health')"
CMD ["streamlit", "run", "app.py", "--server.address=0.0.0.0", "--server.port=8501", "--server.headless=true"]
