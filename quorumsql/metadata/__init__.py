"""Per-database metadata: profiles, value index, column index, persisted under the cache.

The metadata-complete context of MCI-SQL (paper 004, section 3.1): column-level statistics
(:mod:`~quorumsql.metadata.profiler`, :mod:`~quorumsql.metadata.patterns`), inter-column
relations (:mod:`~quorumsql.metadata.relations`), table-level counts and descriptions; plus
the value index (:mod:`~quorumsql.metadata.value_index`) and the column index
(:mod:`~quorumsql.metadata.column_index`). :func:`load_or_build` computes all of it once per
database state and stores it (:mod:`~quorumsql.metadata.store`); :mod:`~quorumsql.metadata.retrieval`
searches the indexes. Rendering for prompts is :mod:`quorumsql.schema_repr`'s job: this package
never imports it (``schema_repr`` imports the records of :mod:`~quorumsql.metadata.models`).
"""

from quorumsql.metadata import retrieval
from quorumsql.metadata.column_index import ColumnHit, ColumnIndex, column_text
from quorumsql.metadata.descriptions import ColumnDescription, description_texts, load_descriptions
from quorumsql.metadata.models import (
    ColumnPair,
    ColumnProfile,
    FunctionalDependency,
    JoinCandidate,
    MetadataRecord,
    TableProfile,
    ValuePattern,
)
from quorumsql.metadata.profiler import ProfileOptions
from quorumsql.metadata.store import DatabaseMetadata, MetadataBuildError, MetadataIndexError, load, load_or_build
from quorumsql.metadata.value_index import ValueHit, ValueIndex

__all__ = [
    "ColumnDescription", "ColumnHit", "ColumnIndex", "ColumnPair", "ColumnProfile", "DatabaseMetadata",
    "FunctionalDependency", "JoinCandidate", "MetadataBuildError", "MetadataIndexError", "MetadataRecord",
    "ProfileOptions", "TableProfile", "ValueHit", "ValueIndex", "ValuePattern", "column_text",
    "description_texts", "load", "load_descriptions", "load_or_build", "retrieval",
]
