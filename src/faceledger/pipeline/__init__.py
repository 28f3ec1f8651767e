"""The data path, one module per stage: ingest -> detect -> quality -> align -> embed -> search."""
