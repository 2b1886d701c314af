"""Text renderings of a (possibly linked) schema for prompts: M-Schema and DDL."""

from quorumsql.schema_repr.ddl import to_ddl
from quorumsql.schema_repr.mschema import format_examples, to_mschema
from quorumsql.schema_repr.selection import Selection, normalize_selection

__all__ = ["Selection", "format_examples", "normalize_selection", "to_ddl", "to_mschema"]
