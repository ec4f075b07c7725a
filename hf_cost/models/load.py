"""Load a resolved checkpoint through transformers, placed by Accelerate."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hf_cost.config.schema import ModelSpec
from hf_cost.errors import UserError
from hf_cost.models.resolve import ResolvedCheckpoint

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack", ".onnx", ".gguf")


def pick_device(requested: str) -> str:
    """'auto' -> 'cuda' when a GPU is visible, else 'cpu'. A missing GPU is a user error."""
    import torch

    if requested == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError("CUDA was asked for but no GPU is visible to torch", where="model.device")
        index = int(requested.split(":")[1]) if ":" in requested else 0
        if index >= torch.cuda.device_count():
            raise UserError(
                f"{requested} asked for, but only {torch.cuda.device_count()} GPU(s) are visible",
                where="model.device",
            )
        return f"cuda:{index}"
    return "cpu"


@dataclass
class LoadedModel:
    model: Any  # torch.nn.Module in eval mode
    tokenizer: Any
    device: Any  # torch.device
    info: dict[str, Any]  # what was loaded: parameters, bytes, dtype, device, source


def load_model(spec: ModelSpec, resolved: ResolvedCheckpoint, model_class: Any = None) -> LoadedModel:
    """Load weights and tokenizer. ``model_class`` defaults to the one ``spec.task`` names."""
    import torch
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    device = pick_device(spec.device)
    if model_class is None:
        model_class = {"feature-extraction": AutoModel, "text-generation": AutoModelForCausalLM}.get(
            spec.task, AutoModelForSequenceClassification)
    dtype: Any = "auto" if spec.dtype == "auto" else getattr(torch, spec.dtype)
    kwargs: dict[str, Any] = {
        _dtype_keyword(): dtype,
        "attn_implementation": spec.attn_implementation,
        "device_map": {"": device},  # Accelerate places every module on this device
        **resolved.pretrained_kwargs(),
    }
    if getattr(resolved, "gguf_file", None) is not None:
        kwargs["config"] = resolved.config  # read once, at resolve time: a GGUF's header takes seconds to parse
    try:
        model = model_class.from_pretrained(resolved.reference, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(resolved.reference, **resolved.pretrained_kwargs())
    except Exception as exc:  # noqa: BLE001 - a checkpoint that does not load is the user's to fix
        raise load_error(resolved.reference, exc) from None
    model.eval()
    if spec.generative:
        prepare_lm_tokenizer(tokenizer)
    params = list(model.parameters())
    first_param = params[0]
    info = {
        "id": resolved.reference if resolved.revision is not None else None,
        "path": str(resolved.local_dir),
        "revision": resolved.revision,
        "commit": resolved.commit,
        "source": resolved.source,
        "task": spec.task,
        "model_class": type(model).__name__,
        "architecture": getattr(resolved.config, "model_type", None),
        "device": str(first_param.device),
        "dtype": str(first_param.dtype).removeprefix("torch."),
        "attn_implementation": getattr(model.config, "_attn_implementation", spec.attn_implementation),
        "parameters": sum(p.numel() for p in params),
        "parameter_bytes": sum(p.numel() * p.element_size() for p in params),
        "buffer_bytes": sum(b.numel() * b.element_size() for b in model.buffers()),
        "weights_size_on_disk_bytes": weights_size_on_disk(resolved.local_dir),
        "max_position_embeddings": getattr(resolved.config, "max_position_embeddings", None),
    }
    gguf_file = getattr(resolved, "gguf_file", None)
    if gguf_file is not None:
        info.update(gguf_weights(resolved.local_dir / gguf_file, info["dtype"]))
    return LoadedModel(model=model, tokenizer=tokenizer, device=first_param.device, info=info)


def prepare_lm_tokenizer(tokenizer: Any) -> None:
    """A causal LM's tokenizer for batched generation: prompts padded on the left (new tokens follow
    each prompt's last real token), and a pad id (the EOS id when the tokenizer has none; the
    attention mask, always passed, keeps pad tokens out of attention)."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token


def gguf_weights(path: Path, dtype: str) -> dict[str, Any]:
    """What a GGUF checkpoint's weights are: quantised in the file, de-quantised on load. Results,
    report and card quote ``weights_note``, so the figures are never read as the original release's."""
    from hf_cost.models.gguf_info import gguf_summary

    summary = gguf_summary(path)
    types = summary.get("tensor_types") or {}
    quantised = sorted(t for t in types if t not in {"F32", "F16", "BF16", "F64"})
    what = "/".join(quantised) if quantised else "unquantised"
    return {
        "gguf_file": path.name,
        "gguf": summary,
        "weights_note": (
            f"weights de-quantised to {dtype} from the GGUF file {path.name} ({what} tensors): a quantised "
            "copy, so its quality is below the original unquantised release"
            if quantised else f"weights loaded to {dtype} from the GGUF file {path.name} (unquantised tensors)"
        ),
    }


def load_error(reference: str, exc: BaseException) -> UserError:
    """One line for anything from_pretrained raises (corrupt weights, missing files, ...)."""
    from hf_cost.models.resolve import needs_remote_code, remote_code_error

    if needs_remote_code(exc):
        return remote_code_error(reference)
    text = str(exc).strip()
    first = text.splitlines()[0] if text else exc.__class__.__name__
    if len(first) > 300:
        first = first[:300] + "…"
    return UserError(f"cannot load {reference}: {exc.__class__.__name__}: {first}", where="model")


def weights_size_on_disk(directory: Path) -> int:
    """Bytes of weight files in a checkpoint directory (following cache symlinks to blobs)."""
    return sum(
        p.resolve().stat().st_size
        for p in directory.rglob("*")
        if p.is_file() and p.suffix in _WEIGHT_SUFFIXES
    )


def _dtype_keyword() -> str:
    """transformers 4.56 renamed from_pretrained's `torch_dtype` to `dtype`."""
    import transformers
    from packaging.version import Version

    return "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"
