"""Everything that calls a model: chat model factory, embedded server, usage accounting."""

from quorumsql.llm.chat import ChatModels, describe_model, get_chat_model, invoke
from quorumsql.llm.usage import Usage, UsageReport

__all__ = ["ChatModels", "Usage", "UsageReport", "describe_model", "get_chat_model", "invoke"]
