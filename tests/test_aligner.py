"""Rule-based column alignment on real Spider schemas."""

import pytest

from quorumsql.agents.aligner import align_column_names
from quorumsql.db import open_database
from tests.conftest import spider_db


@pytest.mark.parametrize(
    "db_id,sql,fixed",
    [
        # normalized spelling within the table
        ("pets_1", "SELECT pet_type, MAX(weight) FROM pets GROUP BY pet_type",
         "SELECT PetType, MAX(weight) FROM pets GROUP BY PetType"),
        # spaces and punctuation are ignored too (quorumsql.sqlnames.normalize_column_name)
        ("pets_1", 'SELECT "pet-type" FROM pets WHERE "Pet ID" = 2001', "SELECT PetType FROM pets WHERE PetID = 2001"),
        # a real name that is a reserved word is written quoted, so the fix runs
        ("railway", "SELECT T1.from_ FROM train AS T1", 'SELECT T1."From" FROM train AS T1'),
        # right column, wrong alias
        ("concert_singer",
         "SELECT T2.Name FROM singer AS T1 JOIN singer_in_concert AS T2 ON T1.Singer_ID = T2.Singer_ID",
         "SELECT T1.Name FROM singer AS T1 JOIN singer_in_concert AS T2 ON T1.Singer_ID = T2.Singer_ID"),
        ("car_1", "SELECT DISTINCT T2.Model FROM car_names AS T1 JOIN cars_data AS T2 ON T1.MakeId = T2.Id WHERE T1.Year > 1980",
         "SELECT DISTINCT T1.Model FROM car_names AS T1 JOIN cars_data AS T2 ON T1.MakeId = T2.Id WHERE T2.Year > 1980"),
    ],
)
def test_fixes(db_id, sql, fixed):
    db = open_database(spider_db(db_id))
    out = align_column_names(sql, db.schema())
    assert out == fixed
    assert db.try_execute(out).ok


@pytest.mark.parametrize(
    "db_id,sql",
    [
        ("concert_singer", "SELECT Name FROM singer"),  # nothing to fix
        ("concert_singer", "SELECT Name AS n FROM singer ORDER BY n"),  # output alias
        ("concert_singer", "SELECT nosuch FROM singer"),  # no close column
        ("concert_singer", "WITH c AS (SELECT Name FROM singer) SELECT nme FROM c"),  # CTEs left alone
        ("concert_singer", "SELECT FROM WHERE"),  # does not parse
        # moving T1.ModelId to T2 would make the join condition a tautology
        ("car_1", "SELECT T1.Horsepower FROM cars_data AS T1 JOIN model_list AS T2 ON T1.ModelId = T2.ModelId"),
    ],
)
def test_leaves_alone(db_id, sql):
    assert align_column_names(sql, open_database(spider_db(db_id)).schema()) is None
