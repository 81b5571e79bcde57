"""Finding, fingerprinting and loading base models and trained runs.

An adapter is only meaningful on the exact base weights it was trained on, so every run records
the sha256 of the base model's weight files (``base_model.digest``) and every load re-computes it:
a different base fails with :class:`~tunegate.errors.IntegrityError` naming both digests.

Everything here is offline: a hub id resolves only from the local Hugging Face cache.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunegate.errors import ConfigError, DependencyError, InputError, IntegrityError
from tunegate.provenance import atomic_write_json, digest_json, sha256_file
from tunegate.resources import resolve_device
from tunegate.workdir import runs_dir

#: Files whose bytes define a model's weights (top level of the model folder).
WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.pth")
#: Encoder families trained with a sequence-classification head (model_kind auto).
ENCODER_TYPES = frozenset(
    {
        "bert",
        "roberta",
        "xlm-roberta",
        "distilbert",
        "deberta",
        "deberta-v2",
        "electra",
        "albert",
        "mpnet",
        "camembert",
        "modernbert",
    }
)
BASE_RECORD = "tunegate_base.json"


@dataclass(frozen=True)
class ModelSource:
    """A base model resolved to a local folder, with its revision and weight digest."""

    name: str  # what the user passed (path or hub id)
    path: Path  # local folder
    revision: str | None  # hub commit for cached snapshots; None for a plain folder
    digest: str  # sha256 over the weight files' sha256s (canonical JSON)
    files: dict[str, str] = field(default_factory=dict)  # weight file -> sha256

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "revision": self.revision,
            "digest": self.digest,
            "files": dict(self.files),
        }


@dataclass
class LoadedModel:
    """A model ready for inference: eval mode, with the tokenizer and label set it was trained with."""

    model: Any
    tokenizer: Any
    kind: str  # "causal" | "seq_cls"
    labels: list[str] | None
    task: str | None
    base_model: str
    method: str | None = None
    run_dir: Path | None = None


def weight_files(path: Path) -> dict[str, str]:
    """Weight file name -> sha256 (top level only, sorted)."""
    found = sorted({p for pat in WEIGHT_PATTERNS for p in path.glob(pat) if p.is_file()})
    return {p.name: sha256_file(p) for p in found}


def resolve_model(model: str | Path) -> ModelSource:
    """A local folder, or a hub id present in the local cache (never downloaded)."""
    name = str(model)
    path = Path(name).expanduser()
    revision: str | None = None
    if not path.is_dir():
        from tunegate.models import named_model_dir

        named = named_model_dir(name)
        if named is not None:
            path = named
    if not path.is_dir():
        # Cache lookup only (no network API exists on this path): the snapshot holding config.json.
        from huggingface_hub import try_to_load_from_cache

        try:
            cached = try_to_load_from_cache(repo_id=name, filename="config.json")
        except Exception:
            cached = None
        if not isinstance(cached, str):
            raise DependencyError(
                f"model {name!r} is neither a local folder nor in the local Hugging Face cache",
                hint="pass a folder with config.json and weights; tunegate never downloads at run time",
            )
        path = Path(cached).parent
        revision = path.name
    if not (path / "config.json").is_file():
        raise InputError("no config.json: this is not a Hugging Face model folder", path=path)
    files = weight_files(path)
    if not files:
        raise InputError("no weight files (*.safetensors, *.bin) in the model folder", path=path)
    return ModelSource(
        name=name, path=path.resolve(), revision=revision, digest=digest_json(files), files=files
    )


def detect_kind(config: Any, task: str | None, requested: str = "auto") -> str:
    """causal for decoders; seq_cls for encoders (which only support classification here)."""
    model_type = getattr(config, "model_type", "")
    is_encoder = model_type in ENCODER_TYPES or bool(getattr(config, "is_encoder_decoder", False))
    kind = requested
    if kind == "auto":
        kind = "seq_cls" if is_encoder else "causal"
    if kind == "seq_cls" and task not in (None, "classification"):
        raise ConfigError(
            f"model type {model_type!r} is trained with a classification head, "
            f"but the data are {task!r} records",
            hint="use a causal LM for instruction and chat data",
        )
    if kind == "causal" and model_type in ENCODER_TYPES:
        raise ConfigError(f"model type {model_type!r} is an encoder and cannot be trained as a causal LM")
    return kind


def load_tokenizer(path: Path) -> Any:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
    return tok


def label_maps(labels: list[str]) -> dict[str, Any]:
    return {
        "num_labels": len(labels),
        "id2label": dict(enumerate(labels)),
        "label2id": {lab: i for i, lab in enumerate(labels)},
    }


def load_pretrained(path: Path, *, kind: str, labels: list[str] | None = None, **kwargs: Any) -> Any:
    """``from_pretrained`` with the right auto class; extra kwargs (dtype, quantization) pass through."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    if kind == "seq_cls":
        if not labels:
            raise ConfigError("a sequence-classification model needs its label set")
        return AutoModelForSequenceClassification.from_pretrained(str(path), **label_maps(labels), **kwargs)
    return AutoModelForCausalLM.from_pretrained(str(path), **kwargs)


def load_skeleton(path: Path, *, kind: str, labels: list[str] | None = None) -> Any:
    """The model's modules on the meta device (shapes and names, no weights, no memory)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    if kind == "seq_cls":
        config = AutoConfig.from_pretrained(str(path), **label_maps(labels or []))
        with torch.device("meta"):
            return AutoModelForSequenceClassification.from_config(config)
    config = AutoConfig.from_pretrained(str(path))
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def load_base_model(
    model: str | Path, *, kind: str, labels: list[str] | None = None, device: str = "cpu"
) -> LoadedModel:
    """The untouched base model (full precision, eval mode): the baseline a run is compared with.
    For ``seq_cls`` the classification head is freshly initialized (there is no trained head)."""
    import torch

    src = resolve_model(model)
    dev = resolve_device(device)
    # A fresh head is random: seed it so the same base model gives the same baseline every time,
    # without disturbing the caller's RNG state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        m = load_pretrained(src.path, kind=kind, labels=labels).to(dev).eval()
    return LoadedModel(
        model=m,
        tokenizer=load_tokenizer(src.path),
        kind=kind,
        labels=labels,
        task=None,
        base_model=str(src.path),
    )


def read_run(run_dir: Path) -> dict[str, Any]:
    run_json = run_dir / "run.json"
    if not run_json.is_file():
        raise InputError("run.json not found: not a finished tunegate run", path=run_json)
    try:
        return dict(json.loads(run_json.read_text(encoding="utf-8")))
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON ({exc.msg})", path=run_json, line=exc.lineno) from None


def verify_base(recorded: dict[str, Any], *, what: str) -> ModelSource:
    """Resolve the recorded base model and check its weights are the ones the run was trained on."""
    src = resolve_model(recorded.get("path") or recorded["name"])
    if src.digest != recorded["digest"]:
        raise IntegrityError(
            f"{what} was trained on base model digest {recorded['digest']} but the base model at "
            f"{src.path} has digest {src.digest}",
            hint="load it against the exact base weights it was trained on",
        )
    return src


def write_base_record(folder: Path, src: ModelSource, *, method: str) -> None:
    """Beside the adapter: the digest of the base it belongs to (peft's files stay standard)."""
    atomic_write_json(folder / BASE_RECORD, {"base_model": src.to_json(), "method": method})


def load_run_model(run_dir: str | Path, *, device: str = "cpu", merged: bool = False) -> LoadedModel:
    """Load a finished run for inference (eval mode).

    Adapters load onto the verified base: a qlora adapter onto the same quantized base it was
    trained with, unless ``merged`` (then the base is loaded in full precision and the adapter
    merged in, as :func:`merge_run` does). Full fine-tunes load from ``model/``.
    """
    import torch

    run_dir = Path(run_dir)
    run = read_run(run_dir)
    kind = run["model_kind"]
    labels = run.get("labels")
    method = run["method"]
    dev = resolve_device(device)
    if method == "full":
        folder = run_dir / "model"
        m = load_pretrained(folder, kind=kind, labels=labels, dtype=torch.float32)
        tok = load_tokenizer(folder)
        return LoadedModel(
            m.to(dev).eval(), tok, kind, labels, run.get("task"), run["base_model"]["path"], method, run_dir
        )

    folder = run_dir / "adapter"
    base_rec = json.loads((folder / BASE_RECORD).read_text(encoding="utf-8"))["base_model"]
    src = verify_base(base_rec, what=f"the adapter in {folder}")
    kwargs: dict[str, Any] = {"dtype": torch.float32}
    quantized = method == "qlora" and not merged
    if quantized:
        from tunegate.training.config import TrainConfig
        from tunegate.training.methods import QuantPlan, quantization_config, quiet_bitsandbytes

        cfg = TrainConfig.model_validate(run["config"])
        # the layers training kept unquantized (CPU 4-bit kernel limits) stay unquantized here
        rec = run.get("quantization") or {}
        plan = QuantPlan(int(rec.get("bits", cfg.quant.bits)), tuple(rec.get("skip_modules") or ()))
        kwargs = {
            "quantization_config": quantization_config(cfg, torch.float32, plan),
            "device_map": {"": dev},
        }
    with quiet_bitsandbytes() if quantized else contextlib.nullcontext():
        from peft import PeftModel

        base = load_pretrained(src.path, kind=kind, labels=labels, **kwargs)
        # the adapter's weights are read onto the run's device too (peft's default is the first
        # accelerator it finds, whatever the device setting says)
        model = PeftModel.from_pretrained(base, str(folder), torch_device=dev)
    if quantized:
        from tunegate.training.methods import quiet_forward

        quiet_forward(model)
    if merged:
        model = model.merge_and_unload()
    if method != "qlora" or merged:
        model = model.to(dev)
    tok = load_tokenizer(folder if (folder / "tokenizer_config.json").is_file() else src.path)
    return LoadedModel(model.eval(), tok, kind, labels, run.get("task"), str(src.path), method, run_dir)


def merge_run(run_dir: str | Path, out: str | Path) -> Path:
    """Merge an adapter into its (verified, full-precision) base and save a standalone model."""
    run_dir = Path(run_dir)
    out = Path(out)
    run = read_run(run_dir)
    if run["method"] == "full":
        raise ConfigError(f"run {run_dir.name} is a full fine-tune: its model/ folder is already standalone")
    loaded = load_run_model(run_dir, device="cpu", merged=True)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out}: the output folder is not empty", hint="pass an empty or new --out folder")
    out.mkdir(parents=True, exist_ok=True)
    loaded.model.save_pretrained(str(out))
    loaded.tokenizer.save_pretrained(str(out))
    atomic_write_json(
        out / "tunegate_merge.json",
        {
            "run_id": run_dir.name,
            "base_model": run["base_model"],
            "adapter_digest": run.get("artifact_digest"),
            "method": run["method"],
        },
    )
    return out


def latest_run(workdir: str | Path) -> Path:
    """The newest finished run (by run id, which starts with a UTC timestamp)."""
    runs = runs_dir(workdir)
    done = sorted(p for p in runs.glob("*") if (p / "run.json").is_file()) if runs.is_dir() else []
    if not done:
        raise InputError("no finished training run found", path=runs, hint="run `tunegate train` first")
    return done[-1]
