"""Retrieval over a store's indexes (quorumsql.metadata.retrieval) on real Spider databases."""

from __future__ import annotations

import shutil

import pytest

from quorumsql.config import Settings
from quorumsql.db import open_database
from quorumsql.errors import QuorumSQLError
from quorumsql.metadata import MetadataIndexError, load_or_build, retrieval
from quorumsql.metadata.store import DatabaseMetadata
from tests.conftest import spider_db


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Settings:
    return Settings(cache_dir=tmp_path_factory.mktemp("retrieval"))


@pytest.fixture(scope="module")
def chinook(settings):
    return load_or_build(open_database(spider_db("chinook_1")), settings)


@pytest.fixture(scope="module")
def concert(settings):
    return load_or_build(open_database(spider_db("concert_singer")), settings)


def test_question_ngrams_drop_stopwords_short_words_and_numbers():
    grams = retrieval.question_ngrams("How many singers are from the Netherlands in 2014?")
    assert grams[:2] == ["how many singers", "many singers are"]  # longest first, in order
    assert "from the netherlands" in grams and "the netherlands" in grams
    assert "singers" in grams and "netherlands" in grams
    for dropped in ("how many", "from the", "the", "in", "2014", "are"):
        assert dropped not in grams  # only stopwords, or a number, or too short
    assert len(grams) == len(set(grams))
    assert retrieval.question_ngrams("What is the average of all?") == []
    assert retrieval.question_ngrams("Aruba", max_words=1) == ["aruba"]


def test_keyword_to_values_with_their_columns(chinook):
    hits = retrieval.lookup_values(chinook, "Amsterdm", k=5)
    assert hits[0].value == "Amsterdam" and 0.8 < hits[0].score < 1.0
    assert {(h.table, h.column) for h in hits if h.value == "Amsterdam"} == {("Customer", "City"),
                                                                            ("Invoice", "BillingCity")}
    exact = retrieval.lookup_values(chinook, "AC/DC", k=3)
    assert ("Artist", "Name", "AC/DC", 1.0) in exact  # the band, and the composer of its tracks
    assert all(h.score == 1.0 for h in exact if h.value == "AC/DC")
    only = retrieval.lookup_values(chinook, "Amsterdm", k=5, tables=["invoice"])
    assert only and {h.table for h in only} == {"Invoice"}


def test_keyword_to_top_k_columns(concert):
    hits = retrieval.lookup_columns(concert, "how old is the singer", k=3)
    assert len(hits) == 3 and (hits[0].table, hits[0].column) == ("singer", "Age")
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    only = retrieval.lookup_columns(concert, "name", k=4, tables=["stadium"])
    assert only and {h.table for h in only} == {"stadium"}


def test_match_values_groups_phrases_per_column(chinook):
    matched = retrieval.match_values(chinook, ["Amsterdm", "amsterdam", "Led Zeppelin"], min_score=0.8)
    assert matched[("Customer", "City")][0] == ("Amsterdam", 1.0)  # best score of the two spellings
    assert matched[("Artist", "Name")][0] == ("Led Zeppelin", 1.0)
    linked = retrieval.match_values(chinook, ["Amsterdm", "Led Zeppelin"], selection={"Customer": ["City"]})
    assert list(linked) == [("Customer", "City")]
    whole = retrieval.match_values(chinook, ["Led Zeppelin"], selection={"Album": None})
    assert whole and all(t == "Album" for t, _ in whole)


def test_question_examples_per_column(chinook):
    q = "Which invoices were billed in Amsterdm or in Sao Paulo?"
    examples = retrieval.question_examples(chinook, q)
    # a misspelling and a missing accent: both cities found in both columns that hold them
    assert set(examples[("Invoice", "BillingCity")][:2]) == {"Amsterdam", "São Paulo"}
    assert set(examples[("Customer", "City")][:2]) == {"Amsterdam", "São Paulo"}
    assert all(len(v) <= 3 for v in examples.values())
    linked = retrieval.question_examples(chinook, q, {"Customer": ["City"]})
    assert set(linked) == {("Customer", "City")}
    assert retrieval.question_examples(chinook, "How many are there?") == {}


def test_a_missing_index_is_one_clear_error(chinook, tmp_path):
    copy = tmp_path / "store"
    shutil.copytree(chinook.path, copy)
    shutil.rmtree(copy / "values")
    shutil.rmtree(copy / "chroma")
    broken = DatabaseMetadata(chinook.record, copy)
    with pytest.raises(MetadataIndexError, match="value index of chinook_1") as err:
        retrieval.question_examples(broken, "invoices billed in Amsterdam")
    assert isinstance(err.value, QuorumSQLError) and "quorumsql index" in str(err.value)
    with pytest.raises(MetadataIndexError, match="column index"):
        retrieval.lookup_columns(broken, "city")
