from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "tenant_apps.agents"
    label = "agents"
    default_auto_field = "django.db.models.BigAutoField"
