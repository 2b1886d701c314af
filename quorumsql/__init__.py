"""QuorumSQL: multi-agent Text-to-SQL.

>>> from quorumsql import answer
>>> ans = answer("How many singers do we have?", "concert_singer.sqlite")  # doctest: +SKIP
>>> ans.sql, ans.rows  # doctest: +SKIP
('SELECT count(*) FROM singer', [(6,)])
"""

from quorumsql.api import Pipeline, answer
from quorumsql.config import Preset, Settings
from quorumsql.db import Database, open_database
from quorumsql.errors import QuorumSQLError
from quorumsql.records import Answer, Candidate, TraceEvent

__version__ = "0.1.0"

__all__ = [
    "Answer", "Candidate", "Database", "Pipeline", "Preset", "QuorumSQLError", "Settings",
    "TraceEvent", "answer", "open_database",
]
