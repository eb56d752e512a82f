"""CLI command groups beyond the core verbs; each module registers on `chute.cli.cli`.

Modules here import `cli`, `common` and `Ctx` from `chute.cli` and add
their commands with `@cli.command(...)`; `chute.cli` imports them at its end.
"""
