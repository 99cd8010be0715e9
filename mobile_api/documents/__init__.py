"""Enforcement documents on the server: number blocks for terminals, agency templates, registration
(re-render and compare, hash to the ledger) and the public verification page (issue 6)."""
