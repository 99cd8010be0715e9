"""media.ingest: the tus 1.0.0 upload endpoint and the recordings terminals announce."""
