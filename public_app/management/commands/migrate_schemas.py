from public_app.management.commands.migrate import Command

__all__ = ["Command"]
