"""Production web server: `gunicorn -c config/gunicorn.conf.py config.wsgi:application`."""

import os

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"  # noqa: S104 - containers bind all
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("WEB_THREADS", "4"))
worker_class = "gthread"
timeout = int(os.environ.get("WEB_TIMEOUT", "30"))
graceful_timeout = 15
keepalive = 5
# Recycle workers now and then, as a bound on whatever a long-lived Python process accumulates. (PostgreSQL
# backends, which cache the catalog of every tenant schema they touch, ~290 KB each, are bounded by connection
# recycling: DB_CONN_MAX_AGE.) Not often: a new worker costs ~1.6 s of CPU to load the app, and at 5,000 requests
# a busy 2-core machine spent a tenth of its CPU restarting workers (issue 17).
max_requests = int(os.environ.get("WEB_MAX_REQUESTS", "100000"))
max_requests_jitter = max_requests // 10
# gunicorn's control socket defaults to one path per user ($HOME/.gunicorn/gunicorn.ctl): two instances on a machine
# would take each other's. Off unless a path is given.
control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET", "")
control_socket_disable = not control_socket
accesslog = None  # our RequestContext/metrics middleware logs requests with their context
errorlog = "-"


def post_worker_init(worker):
    from config import gunicorn_errors

    gunicorn_errors.install()


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
