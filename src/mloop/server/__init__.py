"""The team server: ``mloop server``, the whole Python API over HTTP.

* :mod:`mloop.server.app` builds the FastAPI application: every router below, the
  error answers (``{"error": {"code", "message"}}`` with the error class's status) and
  the identity of each request.
* :mod:`mloop.server.rpc` exposes every repository of the Backend protocol under
  ``/api/v1/<repository>/<method>``; :mod:`mloop.server.client` is the HTTP Backend that
  calls it, so the Python API and the CLI work unchanged against a server.
* :mod:`mloop.server.auth`: tokens, roles, browser sessions, rate limits, the audit log.
* :mod:`mloop.server.objects`: the object store over HTTP (chunks the server lacks,
  streamed blobs, resumable uploads).
* :mod:`mloop.server.mlflow`: the MLflow REST subset, so the mlflow client works unchanged.
"""
