from django.apps import AppConfig


class PublicAppConfig(AppConfig):
    name = "public_app"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from public_app import signals

        signals.connect()
