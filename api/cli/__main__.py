"""`python -m api.cli …` runs the `invekto-knowledge` command."""

from . import app

app()
