# The tradestore CLI and library (used by docker-compose.yml for migrations and the
# exporter).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md constraints.txt ./
COPY src ./src
RUN pip install --no-cache-dir -c constraints.txt '.[binary]'
ENTRYPOINT []
CMD ["tradestore", "--help"]
