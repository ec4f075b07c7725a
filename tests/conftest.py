"""Shared fixtures. No network and no Hub: the environment is fixed before anything imports HF code.

huggingface_hub, transformers and datasets read HF_HOME / HF_HUB_CACHE / HF_HUB_OFFLINE once, at
import time, so they are set here, at module top, before any test module imports them. HF_HOME is
always a fresh session tmp dir (never the user's cache), even when the caller set one.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

_HF_HOME = Path(tempfile.mkdtemp(prefix="hf_cost-tests-hf_home-"))
atexit.register(shutil.rmtree, _HF_HOME, ignore_errors=True)
os.environ["HF_HOME"] = str(_HF_HOME)
os.environ["HF_HUB_CACHE"] = str(_HF_HOME / "hub")
os.environ["HF_DATASETS_CACHE"] = str(_HF_HOME / "datasets")
for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_EVALUATE_OFFLINE"):
    os.environ[_var] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The test machine's cores are shared: with more than one intra-op thread, torch's OpenMP
# workers spin-wait on each other and a 32-wide matmul takes milliseconds instead of
# microseconds. One thread keeps the tiny model fast; subprocesses inherit it.
os.environ["OMP_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
HF_HOME = _HF_HOME

# 5 special tokens, then plain words: 200 entries, matching the config's vocab_size.
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
TINY_VOCAB_SIZE = 200
TINY_MAX_POSITIONS = 64


def tiny_vocab() -> list[str]:
    words = [f"word{i}" for i in range(TINY_VOCAB_SIZE - len(SPECIAL_TOKENS))]
    return SPECIAL_TOKENS + words


def save_tiny_bert(directory: Path) -> Path:
    """A random 2-layer BERT (H=32, I=37) and its tokenizer, saved with save_pretrained."""
    import torch
    from transformers import AutoModel, BertConfig, BertTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    vocab_file = directory / "vocab.txt"
    vocab_file.write_text("\n".join(tiny_vocab()) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab_file), do_lower_case=True)
    assert len(tokenizer) == TINY_VOCAB_SIZE and tokenizer.pad_token_id == 0
    config = BertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        vocab_size=TINY_VOCAB_SIZE,
        max_position_embeddings=TINY_MAX_POSITIONS,
    )
    torch.manual_seed(0)
    AutoModel.from_config(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


def write_scenario(directory: Path, text: str, name: str = "scenario.yaml") -> Path:
    """Write ``text`` as ``directory/name`` and return the path."""
    path = Path(directory) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(name="write_scenario")
def write_scenario_fixture():
    """The `write_scenario(tmp_path, text)` helper, for tests that prefer a fixture to an import."""
    return write_scenario
