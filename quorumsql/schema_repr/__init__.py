"""Text renderings of a (possibly linked) schema for prompts: M-Schema, DDL, and M-Schema with
metadata at MCI-SQL's partial and complete granularities.

Renderers only render: they take a schema or a metadata record plus what retrieval found
(:mod:`quorumsql.metadata.retrieval`) and never search an index themselves.
"""

from quorumsql.schema_repr.ddl import to_ddl
from quorumsql.schema_repr.metadata_context import render_metadata_schema
from quorumsql.schema_repr.mschema import format_examples, to_mschema
from quorumsql.schema_repr.selection import Selection, normalize_selection

__all__ = [
    "Selection", "format_examples", "normalize_selection", "render_metadata_schema", "to_ddl", "to_mschema",
]
