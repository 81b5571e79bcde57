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
* :mod:`~tunegate.approval.artifacts`  which files a signature covers (links and special files refused)
* :mod:`~tunegate.approval.decision`   ``verified_decision``: decide(policy, evidence) recomputed and
  compared with decision.json and the ledger wherever the decision is trusted

Order of work for a run: ``report`` (and ``annex-iv``) -> reviewers ``sign`` -> ``verify`` ->
``promote``. Re-rendering the report after signing changes signed bytes, so existing
approvals stop verifying (by design) and a new approval round starts: delete them and sign
again. Within a round every envelope must match a ledgered ``sign`` event and vice versa.
The policy is the one pinned in the workdir (:mod:`tunegate.policy.pinned`), and the trusted
keys come from ``--approvers`` or the trust root pinned with it, never from the current directory.
"""
