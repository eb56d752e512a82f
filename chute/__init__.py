"""chute: zero-knowledge backups with a queryable history."""

__version__ = "0.1.0"
