"""Imported once by the parse workers' fork server: every parser and the offline NLP pipeline are loaded
before a worker forks, so no worker imports under its memory limit and a file costs a fork only."""

from __future__ import annotations

import contextlib

from . import chunking, loaders

with contextlib.suppress(Exception):  # a parser that cannot load fails in the worker with its own error
    import pdfminer.high_level  # noqa: F401
    import unstructured.partition.csv  # noqa: F401
    import unstructured.partition.docx  # noqa: F401
    import unstructured.partition.html  # noqa: F401
    import unstructured.partition.md  # noqa: F401
    import unstructured.partition.pptx  # noqa: F401
    import unstructured.partition.text  # noqa: F401
    import unstructured.partition.xlsx  # noqa: F401
    from langdetect import detector_factory
    from unstructured.nlp import tokenize

    detector_factory.init_factory()

    loaders._use_offline_nlp()
    tokenize._get_nlp()

__all__ = ["chunking", "loaders"]
