"""Terminal sync: idempotent push of events, pull of reference data, server-ordered resync."""
