FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY pyproject.toml README.md alembic.ini ./
COPY daemon ./daemon
COPY jobs ./jobs
COPY storage ./storage
COPY mcp_bridge ./mcp_bridge
COPY migrations ./migrations
COPY bench ./bench
COPY tests ./tests
RUN pip install --no-cache-dir -e . && useradd --create-home tradingd \
    && mkdir -p /app/.tradingd && chown tradingd /app/.tradingd
USER tradingd
ENTRYPOINT ["tradingd"]
