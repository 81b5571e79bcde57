"""CLI commands of tunegate.training, registered on the main typer app by ``tunegate.cli``.

``tunegate train``, ``tunegate plan`` and ``tunegate merge``: thin over the library; heavy
imports (torch, transformers, peft) happen inside the commands so ``tunegate --help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from tunegate.models import MODEL_HELP

console = Console()


def register(app: typer.Typer) -> None:
    """Add this area's commands to ``app``."""

    @app.command("train")
    def train_cmd(
        workdir: Path = typer.Argument(
            ..., help="Workdir prepared by `tunegate prepare` (reads WORKDIR/data)."
        ),
        model: str = typer.Option(..., "--model", help=MODEL_HELP),
        method: str = typer.Option("lora", "--method", help="full | lora | qlora | dora"),
        config: Path | None = typer.Option(None, "--config", help="Run config YAML (see gates/training/)."),
        set_: list[str] = typer.Option(
            [], "--set", help="Override a config key: --set lora.rank=8 (repeatable)."
        ),
        resume: str | None = typer.Option(
            None,
            "--resume",
            help="Continue an interrupted run: its run id, or 'auto' for the newest matching one.",
        ),
        quiet: bool = typer.Option(False, "--quiet", help="No progress display."),
    ) -> None:
        """Fine-tune MODEL on WORKDIR/data and write WORKDIR/runs/<run_id>/ (run.json, adapter or model)."""
        from tunegate.training.config import load_run_config
        from tunegate.training.train import train_run

        cfg = load_run_config(config, set_)
        result = train_run(workdir, model=model, method=method, config=cfg, progress=not quiet, resume=resume)
        if result.rank != 0:  # under torchrun / accelerate launch, rank 0 reports for the run
            return
        m = result.metrics
        console.print(f"run id: [bold]{result.run_id}[/]")
        console.print(
            f"steps {m['steps']}  final loss {m['final_loss']}  best val loss {m['best_val_loss']}  "
            f"tokens/s {m['tokens_per_s']}  padding {m['padding_fraction']:.1%}",
            highlight=False,
        )
        console.print(f"written: {result.run_dir}", highlight=False)

    @app.command("plan")
    def plan_cmd(
        model: str = typer.Option(
            ...,
            "--model",
            help="Model folder, config.json, cached hub id, or llama-2-7b / llama-2-13b / llama-2-70b.",
        ),
        method: list[str] = typer.Option([], "--method", help="Methods to plan (repeatable; default all)."),
        seq_len: int = typer.Option(2048, "--seq-len", help="Tokens per sequence."),
        batch: int = typer.Option(1, "--batch", help="Sequences per step."),
        gpu_gb: float = typer.Option(24.0, "--gpu-gb", help="GPU memory (GiB)."),
        optimizer: str = typer.Option("adamw", "--optimizer", help="adamw | adamw_8bit | paged_adamw_8bit"),
        rank: int = typer.Option(16, "--rank", help="LoRA rank."),
        no_checkpointing: bool = typer.Option(False, "--no-gradient-checkpointing", help="Plan without it."),
        quant_bits: int = typer.Option(4, "--quant-bits", help="qlora base: 4 or 8 bits."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object for scripts."),
    ) -> None:
        """Predict peak GPU memory per method from the model's config alone, and recommend one."""
        import math

        from tunegate.errors import param_error
        from tunegate.training.plan import PLAN_METHODS, plan_memory

        if not (math.isfinite(gpu_gb) and gpu_gb > 0):
            raise param_error("plan", "gpu-gb", "a finite number of GiB > 0", gpu_gb)
        if rank < 1:
            raise param_error("plan", "rank", "an int >= 1", rank)
        if quant_bits not in (4, 8):
            raise param_error("plan", "quant-bits", "4 or 8", quant_bits)
        report = plan_memory(
            model,
            methods=tuple(method) or PLAN_METHODS,
            seq_len=seq_len,
            batch=batch,
            gpu_gb=gpu_gb,
            optimizer=optimizer,
            rank=rank,
            gradient_checkpointing=not no_checkpointing,
            quant_bits=quant_bits,
        )
        data = report.to_json()
        if as_json:
            typer.echo(json.dumps(data, sort_keys=True))
            return
        table = Table(title=f"{report.model}: {report.params / 1e9:.2f}B parameters, {gpu_gb:g} GiB GPU")
        groups = {
            "weights": ("weights",),
            "training state": ("adapter_weights", "gradients", "optimizer"),
            "activations": ("activations", "logits", "transient"),
            "overhead": ("overhead",),
        }
        for col in ("method", *groups, "peak GiB", "fits", "max batch"):
            table.add_column(col, justify="left" if col == "method" else "right")
        for name, m in data["methods"].items():
            c = m["components"]
            table.add_row(
                name,
                *[f"{sum(c.get(k, 0.0) for k in keys):.2f}" for keys in groups.values()],
                f"{m['peak_gib']:.2f}",
                "yes" if m["fits"] else "no",
                str(m["max_batch"] or "-"),
            )
        console.print(table)
        console.print(
            f"recommended: [bold]{data['recommended']['method']}[/] - {data['recommended']['reason']}"
        )

    @app.command("merge")
    def merge_cmd(
        workdir: Path = typer.Argument(..., help="Workdir with runs/."),
        out: Path = typer.Option(..., "--out", help="Empty folder for the standalone merged model."),
        run: str | None = typer.Option(None, "--run", help="Run id (default: the newest finished run)."),
    ) -> None:
        """Merge a run's adapter into its verified base model (merge_and_unload) and save it."""
        from tunegate.training.model_io import merge_run
        from tunegate.workdir import resolve_run
        from tunegate.workdir import run_dir as _run_dir

        if out.exists() and not out.is_dir():
            from tunegate.errors import InputError

            raise InputError("is not a directory: --out takes an empty or new folder", path=out)
        # a run id is a name inside this workdir (never a path into another one)
        run_dir = _run_dir(workdir, resolve_run(workdir, run))
        path = merge_run(run_dir, out)
        console.print(f"merged {run_dir.name} into {path}", highlight=False)
