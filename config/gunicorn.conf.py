"""Production web server: `gunicorn -c config/gunicorn.conf.py config.wsgi:application`."""

import os

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"  # noqa: S104 - containers bind all
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("WEB_THREADS", "4"))
worker_class = "gthread"
timeout = int(os.environ.get("WEB_TIMEOUT", "30"))
graceful_timeout = 15
keepalive = 5
# Recycle workers now and then: each PostgreSQL backend caches the catalog of every tenant schema it touched
# (roughly 290 KB each), and a long-lived worker's connections would grow with the fleet.
max_requests = int(os.environ.get("WEB_MAX_REQUESTS", "5000"))
max_requests_jitter = 500
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
