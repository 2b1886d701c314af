"""Chat model factory and the one function every agent uses to call a model."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage

from quorumsql.config import Settings
from quorumsql.errors import ModelError
from quorumsql.llm.usage import Usage


def get_chat_model(settings: Settings | None = None, role: str = "generator", **kwargs: Any) -> BaseChatModel:
    """Build the chat model for ``role`` from settings.

    Resolution order: the role's own endpoint (``[roles.<role>]`` in ``quorumsql.toml``), the
    global endpoint (``QUORUMSQL_LLM_BASE_URL`` / ``_MODEL`` / ``_API_KEY``), a running
    ``quorumsql model serve``, and finally the embedded llama.cpp server started in-process.

    Args:
        settings: process settings (default: :meth:`Settings.load`).
        role: ``generator``, ``selector``, ``judge``, ... (selects a per-role endpoint if set).
        **kwargs: passed to ``ChatOpenAI`` (e.g. ``max_tokens``).

    Returns:
        A ``ChatOpenAI`` talking to an OpenAI-compatible endpoint.

    Raises:
        EmbeddedModelError: no endpoint configured and the embedded model cannot start.
    """
    from langchain_openai import ChatOpenAI

    settings = settings or Settings.load()
    role_cfg = settings.roles.get(role)
    base_url = (role_cfg.base_url if role_cfg and role_cfg.base_url else settings.llm_base_url)
    model = (role_cfg.model if role_cfg and role_cfg.model else settings.llm_model)
    api_key = (role_cfg.api_key if role_cfg and role_cfg.api_key else settings.llm_api_key)
    if not base_url:
        from quorumsql.llm.embedded import MODELS, find_served, get_embedded_server

        served = find_served(settings)
        if served is not None:
            base_url, model = served["url"] + "/v1", served["alias"]
        else:
            server = get_embedded_server(settings)
            base_url, model = server.base_url, server.alias
        model = model or MODELS[settings.embedded_model].alias
    params: dict[str, Any] = {
        "base_url": base_url,
        "model": model or "default",
        "api_key": api_key or "not-needed",
        "timeout": settings.llm_timeout,
        "max_retries": settings.llm_max_retries,
        "temperature": 0.0,
    }
    params.update(kwargs)
    return ChatOpenAI(**params)


def describe_model(llm: BaseChatModel) -> str:
    """A short human-readable name of a chat model: ``model @ base_url`` or its class name."""
    name = getattr(llm, "model_name", None) or getattr(llm, "model", None)
    base = getattr(llm, "openai_api_base", None)
    if name and base:
        return f"{name} @ {base}"
    return str(name or type(llm).__name__)


def _model_error(exc: Exception, llm: BaseChatModel) -> ModelError:
    where = describe_model(llm)
    try:
        import openai
    except ImportError:  # pragma: no cover - langchain-openai depends on openai
        openai = None
    if openai is not None:
        if isinstance(exc, openai.APITimeoutError):
            return ModelError(f"model endpoint {where} timed out")
        if isinstance(exc, openai.APIConnectionError):
            return ModelError(f"model endpoint {where} is unreachable (is the server running?)")
        if isinstance(exc, openai.AuthenticationError):
            return ModelError(f"model endpoint {where} refused the API key (QUORUMSQL_LLM_API_KEY)")
        if isinstance(exc, openai.NotFoundError):
            return ModelError(f"model endpoint {where} does not know this model (QUORUMSQL_LLM_MODEL)")
        if isinstance(exc, openai.APIStatusError):
            return ModelError(f"model endpoint {where} answered HTTP {exc.status_code}: {str(exc)[:200]}")
    return ModelError(f"model call to {where} failed: {type(exc).__name__}: {str(exc)[:200]}")


def invoke(llm: BaseChatModel, messages: Sequence[BaseMessage], **kwargs: Any) -> tuple[str, Usage]:
    """Call ``llm`` once and return its text and what the call cost.

    Args:
        llm: any LangChain chat model.
        messages: the prompt.
        **kwargs: per-call options sent to the endpoint (``temperature``, ``max_tokens``, ``stop``).

    Returns:
        ``(text, usage)``; tokens come from the endpoint's usage report (0 when it gives none).

    Raises:
        ModelError: the endpoint is unreachable, refuses the request, or returns no text.
    """
    start = time.monotonic()
    try:
        msg = llm.invoke(list(messages), **kwargs)
    except ModelError:
        raise
    except Exception as exc:  # any client/transport error becomes one clear error
        raise _model_error(exc, llm) from None
    seconds = time.monotonic() - start
    usage = Usage(calls=1, seconds=seconds)
    meta = getattr(msg, "usage_metadata", None) or {}
    if meta:
        usage.prompt_tokens = int(meta.get("input_tokens", 0) or 0)
        usage.completion_tokens = int(meta.get("output_tokens", 0) or 0)
        details = meta.get("input_token_details") or {}
        usage.cached_tokens = int(details.get("cache_read", 0) or 0)
    content = msg.content if isinstance(msg, AIMessage) or hasattr(msg, "content") else msg
    if isinstance(content, list):  # content blocks
        content = "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
    if not isinstance(content, str):
        raise ModelError(f"model {describe_model(llm)} returned no text")
    return content, usage


# A role without an endpoint of its own uses this role's model (else the global endpoint).
ROLE_FALLBACK = {"finetuned": "generator"}


class ChatModels:
    """The chat model of each role, created on first use and then kept.

    Roles: ``generator`` (writes keywords, drafts and candidates and revises them),
    ``finetuned`` (the fine-tuned-format generator; without an endpoint of its own it uses the
    generator's), ``selector`` (the LLM selector) and ``judge`` (the benchmark's LLM judge). Each is resolved by :func:`get_chat_model` from the settings, so a role without an
    endpoint of its own shares the global one; creating the first model may start the embedded
    server, which is why nothing is created before a model is actually needed.

    Args:
        settings: process settings.
        llm: a chat model to use for every role instead (tests, callers with their own model).
    """

    def __init__(self, settings: Settings, llm: BaseChatModel | None = None) -> None:
        self.settings = settings
        self._override = llm
        self._models: dict[str, BaseChatModel] = {}
        self._lock = threading.Lock()

    def get(self, role: str = "generator") -> BaseChatModel:
        """The chat model for ``role``.

        Raises:
            EmbeddedModelError: no endpoint configured and the embedded model cannot start.
        """
        if self._override is not None:
            return self._override
        if role not in self.settings.roles and role in ROLE_FALLBACK:
            role = ROLE_FALLBACK[role]
        with self._lock:
            if role not in self._models:
                self._models[role] = get_chat_model(self.settings, role=role)
            return self._models[role]
