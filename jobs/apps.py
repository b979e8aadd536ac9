from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"

    def ready(self) -> None:
        # Declare every actor in the API process too, so services can enqueue and tests can run a worker.
        from jobs import billing, emails, integrations, maintenance, provisioning, webhooks  # noqa: F401
