"""Benchmarks against public data: the LoCoMo harness (``memstrata bench locomo``).

Modules: ``locomo_data`` (loading and validating the format), ``metrics`` (F1, BLEU-1, evidence
recall, answer in context), ``baselines`` (recency, BM25 and dense retrieval over turns, and the
``ContextProvider`` protocol every system under test follows), ``memstrata_provider`` (memstrata
through its ``Memory`` facade), ``locomo_run`` (the replay and evaluation loop),
``locomo_report`` (the JSON object), ``answering`` (``--answer``), ``plot`` (``--plot``) and
``runtime`` (the real components, imported lazily).
"""
