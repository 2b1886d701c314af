"""Value index: BM25 + character trigrams over real Spider cell values."""

from __future__ import annotations

import numpy as np
import pytest

from quorumsql.config import Settings
from quorumsql.db import open_database
from quorumsql.metadata import ValueIndex, load_or_build
from quorumsql.metadata.value_index import ValueHit, similarities, similarity, trigrams, word_tokens
from tests.conftest import spider_db


@pytest.fixture(scope="module")
def chinook(tmp_path_factory):
    db = open_database(spider_db("chinook_1"))
    return load_or_build(db, Settings(cache_dir=tmp_path_factory.mktemp("vi")))


def test_misspelled_keyword_finds_the_cell_value(chinook):
    hits = chinook.value_index.lookup("Amsterdm", k=5)
    assert hits[0][2] == "Amsterdam" and hits[0][3] > 0.8
    assert {(t, c) for t, c, v, _ in hits if v == "Amsterdam"} == {("Customer", "City"), ("Invoice", "BillingCity")}
    # accents and partial names: "Sao Paulo" -> "São Paulo", "Copenhagn" -> "Copenhagen"
    assert chinook.value_index.lookup("Sao Paulo", k=3)[0][2] == "São Paulo"
    assert chinook.value_index.lookup("copenhagn", k=3)[0][2] == "Copenhagen"


def test_exact_and_word_hits_rank_first(chinook):
    hits = chinook.value_index.lookup("AC/DC", k=5)
    exact = [(t, c) for t, c, v, s in hits if v == "AC/DC" and s == 1.0]
    assert ("Artist", "Name") in exact and hits[0][2] == "AC/DC"
    words = chinook.value_index.lookup("Led Zeppelin", k=10)
    assert words[0][2] == "Led Zeppelin"
    assert any("Led Zeppelin" in v and v != "Led Zeppelin" for _, _, v, _ in words)  # album titles too
    only = chinook.value_index.lookup("Led Zeppelin", k=10, tables=["Album"])
    assert only and all(t == "Album" for t, *_ in only)
    assert chinook.value_index.lookup("", k=3) == []
    assert chinook.value_index.lookup("qqqqzzzz", k=3, min_score=0.6) == []


def test_which_columns_are_indexed(chinook):
    cols = set(chinook.value_index.columns)
    assert ("Customer", "City") in cols and ("Track", "Name") in cols
    assert ("Customer", "Email") not in cols  # e-mail addresses
    assert ("Invoice", "InvoiceDate") not in cols  # dates
    email = chinook.column("Customer", "Email")
    assert any("e-mail" in s or "email" in s for s in email.skipped)


def test_save_and_memory_mapped_load(tmp_path):
    values = {("t", "city"): ["Amsterdam", "Rotterdam", "Den Haag"], ("t", "name"): ["Anne Frank", "Émile Zola"]}
    built = ValueIndex.build(values, tmp_path / "v")
    loaded = ValueIndex.load(tmp_path / "v", mmap=True)
    assert isinstance(loaded._blob, np.memmap)
    assert len(loaded) == 5 and loaded.values_of("t", "name") == ["Anne Frank", "Émile Zola"]
    assert loaded.lookup("Rotterdm", k=1)[0][:3] == ("t", "city", "Rotterdam")
    assert built.lookup("emile zola", k=1)[0][2] == "Émile Zola" or built.lookup("zola", k=1)[0][2] == "Émile Zola"
    empty = ValueIndex.build({}, tmp_path / "e")
    assert ValueIndex.load(tmp_path / "e").lookup("x") == [] and len(empty) == 0


def test_tokenizers_and_similarity():
    assert word_tokens("São Paulo, 2nd-A") == ["são", "paulo", "2nd", "a"]
    assert trigrams("Ab") == [" ab", "ab "]
    assert similarity("dublin", "Dublin") == 1.0
    assert similarity("dublin", "Dublin Airport") > similarity("dublin", "Berlin Airport")


def test_batch_similarities_match_single_ones_and_rank_sensibly():
    values = ["Dublin Airport", "Berlin Airport", "dublin", "", "Port of Dublin City"]
    batch = similarities("Dublin", values)
    assert batch.shape == (5,) and batch[3] == 0.0
    assert list(batch) == [similarity("Dublin", v) for v in values]
    assert batch[2] == 1.0  # same text up to case
    assert batch[0] == batch[4] == 0.95  # a whole-word window inside a longer value
    assert batch[0] > batch[1] > 0.0
    assert similarities("", values).tolist() == [0.0] * 5 and similarities("x", []).shape == (0,)


def test_hits_are_named_tuples(chinook):
    hit = chinook.value_index.lookup("Amsterdm", k=1)[0]
    assert isinstance(hit, ValueHit) and (hit.table, hit.value) == (hit[0], hit[2])
