"""Token, call and time accounting for model calls, per graph node."""

from __future__ import annotations

import math

from pydantic import BaseModel, Field

#: characters per token of schema renderings: the embedded model's Qwen2.5 tokenizer (llama.cpp
#: ``/tokenize``) gave 3.06 over the M-Schema and DDL renderings of the 10 Spider dev databases
CHARS_PER_TOKEN = 3.0


def estimate_tokens(text: str) -> int:
    """Estimated prompt tokens of ``text``: ``ceil(len(text) / CHARS_PER_TOKEN)``.

    Used to keep prompts under a budget without calling the model's tokenizer; the endpoint's
    own usage report gives the exact count after the call.
    """
    return math.ceil(len(text or "") / CHARS_PER_TOKEN)


class Usage(BaseModel):
    """Cost of one or more model calls.

    Attributes:
        prompt_tokens: prompt tokens of the calls (as the endpoint reports them), cached or not.
        cached_tokens: of those, tokens the endpoint served from its prompt cache instead of
            reading them (OpenAI's ``prompt_tokens_details.cached_tokens``; llama.cpp reports it
            too; 0 when the endpoint says nothing).
        completion_tokens: tokens written by the model.
        calls: number of model calls.
        seconds: wall-clock seconds spent waiting for the model.
    """

    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0
    seconds: float = 0.0

    @property
    def read_tokens(self) -> int:
        """Prompt tokens the model actually read (prompt minus cached)."""
        return max(0, self.prompt_tokens - self.cached_tokens)

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            calls=self.calls + other.calls,
            seconds=self.seconds + other.seconds,
        )


class UsageReport(BaseModel):
    """Usage of a whole run: the total and a breakdown by graph node."""

    total: Usage = Field(default_factory=Usage)
    by_node: dict[str, Usage] = Field(default_factory=dict)

    @classmethod
    def from_events(cls, events: list[tuple[str, Usage]]) -> "UsageReport":
        """Aggregate ``(node, usage)`` pairs."""
        report = cls()
        for node, usage in events:
            report.by_node[node] = report.by_node.get(node, Usage()) + usage
            report.total = report.total + usage
        return report

    def summary(self) -> str:
        """One line: calls, tokens in (and how many the prompt cache served) / out, model seconds."""
        t = self.total
        cached = f" ({t.cached_tokens:,} from cache)" if t.cached_tokens else ""
        return (
            f"{t.calls} LLM call{'s' if t.calls != 1 else ''}, {t.prompt_tokens:,} prompt{cached} + "
            f"{t.completion_tokens:,} completion tokens, {t.seconds:.1f} s in the model"
        )
