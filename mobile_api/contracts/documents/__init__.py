"""Enforcement documents made on the terminal, offline, and verifiable anywhere (issue 6).

Entry points (all pure, terminal-runnable; only stdlib, msgspec, segno and reportlab):

* ``render(kind, facts, template=, rules=, calendar=, public_base_url=)`` → ``RenderedDocument``
  (PDF bytes, on-screen text, SHA-256, document id and QR address, the computed periods, the
  hearing-right and simple-procedure decisions);
* ``load_templates(override_dir)`` / ``parse_template(text)`` and ``load_rules(override_dir)`` /
  ``parse_rules(text)``: the agency's files, checked when loaded;
* ``NumberAllocator(state, persist)`` with ``take(year)`` and ``format_number(...)``: 文书编号 from the
  server's number blocks, never reused;
* ``hearing_right`` / ``simple_procedure``: the rules on their own, for the officer's screen.
"""

from mobile_api.contracts.documents.errors import (
    DocumentError,
    FactsIncomplete,
    FontMissing,
    NumberBlockRejected,
    NumbersExhausted,
    ProcedureRefused,
    RulesRejected,
    TemplateRejected,
    UnprintableText,
)
from mobile_api.contracts.documents.facts import (
    DOCUMENT_KINDS,
    KIND_LABELS,
    AgencyInfo,
    DocumentFacts,
    DocumentKind,
    Hearing,
    NoticeRef,
    OfficerInfo,
    Organisation,
    Party,
    Payment,
    PenaltyItem,
    Person,
    Remedies,
    Service,
    Statement,
    Witness,
    canonical_facts,
    decode_facts,
)
from mobile_api.contracts.documents.numbers import (
    AllocatedNumber,
    AllocatorState,
    NumberAllocator,
    NumberBlock,
    format_number,
)
from mobile_api.contracts.documents.render import (
    RenderedDocument,
    document_id,
    render,
    verify_url,
)
from mobile_api.contracts.documents.rules import (
    AgencyRules,
    RuleOutcome,
    hearing_right,
    load_rules,
    parse_rules,
    simple_procedure,
)
from mobile_api.contracts.documents.templates import (
    Template,
    load_templates,
    parse_template,
)

__all__ = [
    "DOCUMENT_KINDS",
    "KIND_LABELS",
    "AgencyInfo",
    "AgencyRules",
    "AllocatedNumber",
    "AllocatorState",
    "DocumentError",
    "DocumentFacts",
    "DocumentKind",
    "FactsIncomplete",
    "FontMissing",
    "Hearing",
    "NoticeRef",
    "NumberAllocator",
    "NumberBlock",
    "NumberBlockRejected",
    "NumbersExhausted",
    "OfficerInfo",
    "Organisation",
    "Party",
    "Payment",
    "PenaltyItem",
    "Person",
    "ProcedureRefused",
    "Remedies",
    "RenderedDocument",
    "RuleOutcome",
    "RulesRejected",
    "Service",
    "Statement",
    "Template",
    "TemplateRejected",
    "UnprintableText",
    "Witness",
    "canonical_facts",
    "decode_facts",
    "document_id",
    "format_number",
    "hearing_right",
    "load_rules",
    "load_templates",
    "parse_rules",
    "parse_template",
    "render",
    "simple_procedure",
    "verify_url",
]
