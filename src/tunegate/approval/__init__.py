"""tunegate.approval: the signed human decision, verified promotion and the audit trail.

Modules (each a plain library; ``commands.py`` is the thin CLI over them):

* :mod:`~tunegate.approval.report`     ``write_report``: report.html (self-contained), report.pdf,
  report_evidence.json, policy.json
* :mod:`~tunegate.approval.annex_iv`   ``write_annex_iv``: EU AI Act Annex IV Markdown + PDF
* :mod:`~tunegate.approval.keys`       Ed25519 reviewer keys and the trusted ``*.pub`` directory
* :mod:`~tunegate.approval.sign`       ``sign_run``: in-toto Statement v1 in a DSSE envelope
* :mod:`~tunegate.approval.verify`     ``verify_run``: offline re-hash and signature checks
* :mod:`~tunegate.approval.promote`    ``promote`` / ``load_from_registry``: the immutable registry
* :mod:`~tunegate.approval.checkpoint` signed ledger checkpoints, retention check
* :mod:`~tunegate.approval.audit`      ``audit_workdir``: ledger + checkpoints + approvals' checkpoints
* :mod:`~tunegate.approval.artifacts`  which files a signature covers

Order of work for a run: ``report`` (and ``annex-iv``) -> reviewers ``sign`` -> ``verify`` ->
``promote``. Re-rendering the report after signing changes signed bytes, so existing
approvals stop verifying (by design): delete them and sign again.
"""
