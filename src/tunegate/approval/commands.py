"""CLI commands of tunegate.approval, registered on the main typer app by ``tunegate.cli``.

keygen, sign, verify, promote, report, annex-iv, and ``audit verify`` / ``audit checkpoint``.
Exit codes: 0 ok, 1 the gate says no (not approved / refused), 2 bad input or an integrity failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from tunegate.errors import ConfigError, InputError

_POLICY = typer.Option(
    None, "--policy", help="Gate policy YAML (default: the policy pinned in WORKDIR at prepare)."
)
_REASON = typer.Option(
    None,
    "--policy-change-reason",
    help="Needed when --policy differs from the pinned policy: the change is pinned and ledgered.",
)
_RUN = typer.Option(None, "--run", help="Run id under WORKDIR/runs (default: the only run).")
_APPROVERS = typer.Option(
    None, "--approvers", help="Trusted reviewer public keys (default: approval.approvers_dir)."
)


def _policy(workdir: Path, path: Path | None, reason: str | None = None):  # type: ignore[no-untyped-def]
    from tunegate.policy.pinned import resolve_policy

    return resolve_policy(workdir, path, change_reason=reason)


def _registry(path: Path | None) -> Path | None:
    """``--registry``: a directory (created on first promotion), never an existing file."""
    if path is not None and path.exists() and not path.is_dir():
        raise InputError("is not a directory: --registry takes a registry folder", path=path)
    return path


def _passphrase(var: str | None) -> bytes | None:
    if var is None:
        return None
    value = os.environ.get(var)
    if not value:
        raise ConfigError(f"environment variable {var} (--passphrase-env) is not set or empty")
    return value.encode("utf-8")


def register(app: typer.Typer) -> None:
    """Add this area's commands to ``app``."""

    @app.command("keygen")
    def keygen(
        name: str = typer.Option(..., "--name", help="Reviewer name (letters, digits, . _ -)."),
        out: Path = typer.Option(..., "--out", help="Directory for NAME.key (0600) and NAME.pub."),
        passphrase_env: str = typer.Option(None, "--passphrase-env", help="Encrypt the key with $VAR."),
        role: list[str] = typer.Option(["reviewer"], "--role", help="Role(s) recorded in NAME.pub."),
    ) -> None:
        """Create an Ed25519 reviewer key pair. Copy only NAME.pub into gates/approvers/."""
        from tunegate.approval.keys import generate_keypair, load_public_key_file

        if out.exists() and not out.is_dir():
            raise InputError("is not a directory: --out takes the folder for NAME.key and NAME.pub", path=out)

        priv, pub = generate_keypair(name, out, passphrase=_passphrase(passphrase_env), roles=tuple(role))
        typer.echo(
            f"private key: {priv} (keep it secret)\npublic key:  {pub}\nkey id:      "
            f"{load_public_key_file(pub).key_id}"
        )

    @app.command("sign")
    def sign(
        workdir: Path = typer.Argument(..., help="The workdir."),
        key: Path = typer.Option(..., "--key", help="Your private key (NAME.key)."),
        decision: str = typer.Option(..., "--decision", help="approve or reject."),
        run: str = _RUN,
        comment: str = typer.Option(None, "--comment", help="A comment, signed with the decision."),
        override_justification: str = typer.Option(
            None, "--override-justification", help="Must equal the justification shown in the report."
        ),
        rollback: bool = typer.Option(False, "--rollback", help="Sign an explicit rollback (re-promotion)."),
        registry: Path = typer.Option(None, "--registry", help="Registry the approval will be promoted to."),
        name: str = typer.Option(None, "--name", help="Registry name (default: run.json 'name')."),
        passphrase_env: str = typer.Option(None, "--passphrase-env", help="Key passphrase is in $VAR."),
        policy: Path = _POLICY,
        policy_change_reason: str = _REASON,
        approvers: Path = _APPROVERS,
    ) -> None:
        """Sign your decision over every covered artifact (in-toto Statement v1 in DSSE)."""
        from tunegate.approval.sign import sign_run

        out = sign_run(
            workdir,
            key,
            decision,  # type: ignore[arg-type]  # sign_run validates it
            policy=_policy(workdir, policy, policy_change_reason),
            run_id=run,
            approvers_dir=approvers,
            comment=comment,
            override_justification=override_justification,
            rollback=rollback,
            registry=_registry(registry),
            name=name,
            passphrase=_passphrase(passphrase_env),
        )
        typer.echo(f"signed: {out}")

    @app.command("verify")
    def verify(
        workdir: Path = typer.Argument(..., help="The workdir."),
        run: str = _RUN,
        registry: Path = typer.Option(None, "--registry", help="Also check against this registry's head."),
        name: str = typer.Option(None, "--name", help="Registry name (default: run.json 'name')."),
        policy: Path = _POLICY,
        policy_change_reason: str = _REASON,
        approvers: Path = _APPROVERS,
    ) -> None:
        """Re-hash all covered artifacts offline and check every approval."""
        from tunegate.approval import artifacts
        from tunegate.approval.sign import registry_head_digest, registry_name
        from tunegate.approval.verify import verify_run

        kwargs = {}
        if _registry(registry) is not None:
            rid = artifacts.resolve_run(workdir, run)
            kwargs["registry_head"] = registry_head_digest(registry, registry_name(workdir, rid, name))
        pol = _policy(workdir, policy, policy_change_reason)
        res = verify_run(workdir, policy=pol, run_id=run, approvers_dir=approvers, **kwargs)
        from tunegate import ledger

        tr = res.trust_root
        typer.echo(
            f"trust root: {tr.get('path')} ({tr.get('source')}; *.pub set digest "
            f"{str(tr.get('digest'))[:16]}); policy in force {pol.digest()[:16]}"
        )
        typer.echo(
            f"run {res.run_id}: {res.subjects} covered files, {len(res.approvals)} signature(s) verified"
        )
        ledger.append_event(
            workdir,
            "verify",
            config_digest=pol.digest(),
            details={
                "run_id": res.run_id,
                "approved": res.approved,
                "approval_digest": res.approval_digest,
                "trust_root": tr.get("path"),
                "trust_root_digest": tr.get("digest"),
            },
        )
        for a in res.approvals:
            typer.echo(f"  {a.decision:7s} {a.reviewer} ({a.key_id[:16]}) seq {a.sequence} {a.time}")
        if not res.approved:
            from tunegate.approval.sign import ApprovalRefusedError

            # a TunegateError, not typer.Exit: tunegate.cli.main maps it to exit 1 in every mode
            raise ApprovalRefusedError(f"run {res.run_id} is not approved: " + "; ".join(res.reasons))
        typer.echo(f"approved (approval digest {res.approval_digest})")

    @app.command("promote")
    def promote_cmd(
        workdir: Path = typer.Argument(..., help="The workdir."),
        registry: Path = typer.Option(..., "--registry", help="Registry directory."),
        run: str = _RUN,
        name: str = typer.Option(None, "--name", help="Registry name (default: run.json 'name')."),
        merged: bool = typer.Option(False, "--merged", help="Also store the adapter merged into its base."),
        policy: Path = _POLICY,
        policy_change_reason: str = _REASON,
        approvers: Path = _APPROVERS,
    ) -> None:
        """Verify and copy the approved adapter into an immutable, versioned registry entry."""
        from tunegate.approval.promote import promote

        e = promote(
            workdir,
            _registry(registry),  # type: ignore[arg-type]  # required option: never None
            policy=_policy(workdir, policy, policy_change_reason),
            run_id=run,
            approvers_dir=approvers,
            name=name,
            merged=merged,
        )
        tr = e.manifest.get("trust_root") or {}
        typer.echo(f"trust root: {tr.get('path')} ({tr.get('source')}; digest {str(tr.get('digest'))[:16]})")
        typer.echo(f"promoted {e.run_id} to {e.path} (version {e.version})")

    @app.command("report")
    def report(
        workdir: Path = typer.Argument(..., help="The workdir."),
        run: str = _RUN,
        override_justification: str = typer.Option(
            None,
            "--override-justification",
            help="Justification for approving a failed gate (shown, then signed).",
        ),
        registry: Path = typer.Option(
            None, "--registry", help="Compare with the version of this run's name promoted there."
        ),
        policy: Path = _POLICY,
        policy_change_reason: str = _REASON,
    ) -> None:
        """Render report.html (self-contained), report.pdf and report_evidence.json for a run."""
        from tunegate.approval.report import write_report

        out = write_report(
            workdir,
            policy=_policy(workdir, policy, policy_change_reason),
            run_id=run,
            override_justification=override_justification,
            registry=registry,
        )
        for k, p in out.items():
            typer.echo(f"{k}: {p}")

    @app.command("annex-iv")
    def annex_iv(
        workdir: Path = typer.Argument(..., help="The workdir."),
        run: str = _RUN,
        policy: Path = _POLICY,
        policy_change_reason: str = _REASON,
    ) -> None:
        """Write EU AI Act Annex IV technical documentation (Markdown + PDF) for a run."""
        from tunegate.approval import artifacts
        from tunegate.approval.annex_iv import annex_location, write_annex_iv

        out = write_annex_iv(workdir, policy=_policy(workdir, policy, policy_change_reason), run_id=run)
        for k, p in out.items():
            typer.echo(f"{k}: {p}")
        where, signed = annex_location(workdir, artifacts.resolve_run(workdir, run))
        if signed:
            typer.echo(
                f"the run is already signed: written to {where}, outside the signed artifact set "
                "(the approvals stay valid; this document is not covered by them)"
            )

    audit = typer.Typer(
        help="The hash-chained audit ledger and its signed checkpoints.", no_args_is_help=True
    )

    @audit.command("verify")
    def audit_verify(
        workdir: Path = typer.Argument(..., help="The workdir."),
        policy: Path = _POLICY,
        policy_change_reason: str = _REASON,
    ) -> None:
        """Verify the ledger chain (first bad entry), every checkpoint and the approvals' checkpoints."""
        from tunegate.approval.audit import audit_workdir

        pol = _policy(workdir, policy, policy_change_reason)
        rep = audit_workdir(workdir, policy=pol)
        typer.echo(
            f"ledger: {rep.entries} entries, {rep.checkpoints} checkpoints, "
            f"oldest entry {rep.oldest_entry_time}"
        )
        for note in rep.notes:
            typer.echo(f"note: {note}")
        if not rep.ok:
            from tunegate.errors import IntegrityError

            first = f"first bad entry: {rep.first_bad}; " if rep.first_bad is not None else ""
            raise IntegrityError(f"{workdir}: audit trail does not verify: {first}" + "; ".join(rep.problems))
        from tunegate import ledger
        from tunegate.approval.checkpoint import prunable_entries

        days = pol.approval.retention_days
        old = prunable_entries(ledger.read_entries(workdir), days)
        typer.echo(
            f"retention: {days} days; {old} entries are older and kept (tunegate never prunes the ledger)"
        )
        typer.echo("audit trail verified")

    @audit.command("repair")
    def audit_repair(
        workdir: Path = typer.Argument(..., help="The workdir."), policy: Path = _POLICY
    ) -> None:
        """Remove a torn final ledger line (an append that never completed) and record the repair.

        Refuses anything else: an edited, deleted or reordered entry is never repaired.
        """
        from tunegate.approval.audit import repair_audit_trail

        res = repair_audit_trail(workdir, policy=_policy(workdir, policy))
        if res.event is None:
            typer.echo("nothing to repair: no torn final line")
            return
        for t in res.removed:
            typer.echo(
                f"removed torn line {t.line} of {t.path} ({t.size} bytes, {t.reason}, sha256 {t.sha256[:16]})"
            )
        typer.echo(f"repair recorded as ledger entry {res.event['seq']}")

    @audit.command("checkpoint")
    def audit_checkpoint(
        workdir: Path = typer.Argument(..., help="The workdir."),
        stage: str = typer.Option("manual", "--stage", help="Stage name recorded in the checkpoint."),
        policy: Path = _POLICY,
        policy_change_reason: str = _REASON,
    ) -> None:
        """Sign the ledger head with the workdir key (authenticates the workdir, not a person)."""
        from tunegate.approval.checkpoint import write_checkpoint

        pol = _policy(workdir, policy, policy_change_reason)
        cp = write_checkpoint(workdir, stage, key_rel=pol.approval.checkpoint_key)
        typer.echo(f"checkpoint: size {cp['size']} head {cp['head']} at {cp['time']}")

    app.add_typer(audit, name="audit")
