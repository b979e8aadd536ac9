from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"

    def ready(self) -> None:
        # The broker first (actors bind to it when declared), then every actor, in every process: the API enqueues
        # by actor name and checks the name exists; the scheduler relays; tests run a worker in process.
        from config.dramatiq import setup_broker

        setup_broker()
        from jobs import billing, emails, integrations, maintenance, provisioning, webhooks  # noqa: F401
