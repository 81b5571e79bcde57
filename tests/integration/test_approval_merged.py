"""``promote --merged`` with a real peft LoRA adapter on the pretrained stories260k Llama."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.approval_fixtures import make_policy, refresh_evidence, write_data, write_run

pytestmark = [pytest.mark.slow, pytest.mark.needs_shared]


def test_promote_merged_real_adapter(tmp_path: Path, stories260k: Path) -> None:
    import json
    import shutil

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from tunegate.approval.keys import generate_keypair
    from tunegate.approval.promote import load_from_registry, promote
    from tunegate.approval.report import write_report
    from tunegate.approval.sign import sign_run

    wd = tmp_path / "wd"
    write_data(wd)
    approvers = tmp_path / "approvers"
    write_run(wd, "run-a", policy=make_policy(approvers))  # decided under the policy used below
    adapter = wd / "runs/run-a/adapter"
    shutil.rmtree(adapter)
    torch.manual_seed(0)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(str(stories260k)),
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
    )
    model.save_pretrained(str(adapter))
    run = json.loads((wd / "runs/run-a/run.json").read_text())
    run["base_model"]["path"] = str(stories260k)
    (wd / "runs/run-a/run.json").write_text(json.dumps(run))
    approvers.mkdir()
    policy = make_policy(approvers)
    refresh_evidence(wd, "run-a", policy)  # the evidence names the weights it scored: these ones
    write_report(wd, policy=policy, run_id="run-a")
    for name in ("alice", "bob"):
        priv, pub = generate_keypair(name, tmp_path / "keys")
        shutil.copy(pub, approvers)
        sign_run(wd, priv, "approve", policy=policy, run_id="run-a")
    entry = promote(wd, tmp_path / "reg", policy=policy, run_id="run-a", merged=True)
    assert entry.merged is not None and (entry.merged / "config.json").is_file()
    loaded = load_from_registry(tmp_path / "reg", entry.name, policy=policy)
    merged = AutoModelForCausalLM.from_pretrained(str(loaded.merged))
    base = AutoModelForCausalLM.from_pretrained(str(stories260k))
    q_merged = merged.model.layers[0].self_attn.q_proj.weight
    q_base = base.model.layers[0].self_attn.q_proj.weight
    assert q_merged.shape == q_base.shape and not torch.allclose(q_merged, q_base)  # the adapter is in
