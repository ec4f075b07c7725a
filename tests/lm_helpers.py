"""A tiny random Llama and its word-level tokenizer with a ChatML-style chat template: what the
causal-LM tests run on (no download)."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Any

LM_WORDS = [f"w{i}" for i in range(80)] + ["praise", "complaint", "question", "user", "assistant", "system"]
LM_SPECIALS = ["<pad>", "<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|> {{ m['role'] }} {{ m['content'] }} <|im_end|> {% endfor %}"
    "{% if add_generation_prompt %}<|im_start|> assistant {% endif %}"
)


def save_tiny_llama(directory: Path, *, seed: int = 0, pad_token: bool = False, chat_template: bool = True) -> Path:
    """A 2-layer Llama (hidden 32, 4 heads, 2 KV heads, vocab = the words above), saved with
    save_pretrained; EOS is '</s>'. Without ``pad_token`` the tokenizer has none (as SmolLM2's GGUF)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    vocab = {t: i for i, t in enumerate(LM_SPECIALS + LM_WORDS)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                  pad_token="<pad>" if pad_token else None,
                                  additional_special_tokens=["<|im_start|>", "<|im_end|>"])
    if chat_template:
        tok.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         bos_token_id=vocab["<s>"], eos_token_id=vocab["</s>"], tie_word_embeddings=False)
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(directory)
    tok.save_pretrained(directory)
    return directory


def tickets_csv(path: Path, n: int = 60, seed: int = 0, periods: tuple[str, ...] = ("2023-H1",)) -> Path:
    """Rows of 3-12 random words with a label among praise/complaint/question and a period."""
    rng = random.Random(seed)
    labels = ["praise", "complaint", "question"]
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label", "period"])
        for i in range(n):
            words = [rng.choice(LM_WORDS[:80]) for _ in range(rng.randint(3, 12))]
            writer.writerow([" ".join(words), labels[i % 3], periods[i % len(periods)]])
    return path


def lm_suite_yaml(model_dir: Path, data: Path, scenarios: str, generation: str = "") -> str:
    return f"""
name: lm-test
model: {{path: {json.dumps(str(model_dir))}, task: text-generation, device: cpu}}
inputs: {{kind: dataset, dataset: {{path: {json.dumps(str(data))}}}, sequence_length: 64, num_samples: 16}}
{generation}
scenarios:{scenarios}"""


def refused_everywhere(text: str, tmp_path: Path, capsys: Any, fragment: str) -> None:
    """``text`` as a scenario file: validate and run each exit 2 with one stderr line holding
    ``fragment``, and nothing is written (no output folder, nothing new beside the file)."""
    from conftest import write_scenario

    from hf_cost.cli import main

    path = write_scenario(tmp_path / "in", text)
    before = sorted(p.name for p in path.parent.iterdir())
    for command in (["validate", str(path)], ["run", str(path), "--output", str(tmp_path / "out"), "--quiet"]):
        assert main(command) == 2, command
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("error:"), err
        assert fragment in err, err
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in path.parent.iterdir()) == before
