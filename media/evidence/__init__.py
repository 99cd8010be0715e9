"""media.evidence: verification, sealing, retention and logged access of recordings."""
