"""`python -m api.cli …` runs the `invekto-knowledge` command."""

from . import app

# Only when run: a walk over the package that imports every module must not start the CLI.
if __name__ == "__main__":
    app()
