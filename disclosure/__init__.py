"""disclosure (公示): publication of enforcement decisions, withdrawal, the public portal, annual report.

Entry points for server.app:

* ``services.record_decision(session, DecisionIssued, calendar=, keyring=, now=)`` and
  ``services.withdraw(session, DecisionChanged, calendar=, keyring=, now=)`` — call them from the
  cases area's after-commit hook, each in a transaction of its own.
* ``hooks.DisclosureHooks(may_publish=, review_catalog=)`` — the review gate and the review
  catalog, put in the application state under ``hooks.STATE_KEY``.
* ``jobs.start_jobs(context, hooks)`` in the lifespan (``jobs.run_due_jobs`` runs one round).
* Controllers: ``portal.PortalController`` (HTML, ``/gongshi``),
  ``controllers.PublicDisclosureController`` (JSON, ``/api/gongshi``), and
  ``controllers.DisclosureStaffController`` (``/api/disclosure``, agency and system admins).
"""
