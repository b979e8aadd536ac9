from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "tenant_apps.webhooks"
    label = "webhooks"
    default_auto_field = "django.db.models.BigAutoField"
