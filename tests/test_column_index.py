"""Column index (chromadb + offline MiniLM ONNX embeddings) on real Spider schemas."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from quorumsql.config import Settings
from quorumsql.db import open_database
from quorumsql.llm.embeddings import MiniLMEmbedder
from quorumsql.metadata import load_or_build
from quorumsql.metadata.column_index import humanize

REPO = Path(__file__).resolve().parents[1]
SPIDER = REPO.parent / "shared" / "data" / "spider" / "database"

pytestmark = pytest.mark.usefixtures("spider_data")  # skips without ../shared/data, fails under CI


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    return Settings(cache_dir=tmp_path_factory.mktemp("ci"))


def test_embedder_shapes_and_normalisation():
    emb = MiniLMEmbedder()
    v = emb.embed(["age of the singer", "", "singer age", "a" * 5000])
    assert v.shape == (4, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    assert float(v[0] @ v[2]) > 0.85 > float(v[0] @ v[1])
    assert emb.embed([]).shape == (0, 384)


def test_paraphrase_finds_the_column(settings):
    meta = load_or_build(open_database(SPIDER / "concert_singer" / "concert_singer.sqlite"), settings)
    assert meta.column_index.query("how old is the singer", k=1)[0][:2] == ("singer", "Age")
    top = meta.column_index.query("number of seats in the stadium", k=3)
    assert ("stadium", "Capacity") in [(t, c) for t, c, _ in top]
    scores = [s for _, _, s in meta.column_index.query("singer nationality", k=5)]
    assert scores == sorted(scores, reverse=True) and -1.0 <= scores[-1] <= 1.0
    only = meta.column_index.query("name", k=5, tables=["stadium"])
    assert only and all(t == "stadium" for t, _, _ in only)


def test_paraphrase_on_a_larger_schema(settings):
    meta = load_or_build(open_database(SPIDER / "chinook_1" / "chinook_1.sqlite"), settings)
    hits = [(t, c) for t, c, _ in meta.column_index.query("length of a song in milliseconds", k=3)]
    assert ("Track", "Milliseconds") in hits
    hits = [(t, c) for t, c, _ in meta.column_index.query("when was the invoice issued", k=3)]
    assert ("Invoice", "InvoiceDate") in hits


def test_humanize():
    assert humanize("SongReleaseYear") == "song release year"
    assert humanize("song_release_year") == "song release year"
