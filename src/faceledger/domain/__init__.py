"""Pure domain: frozen records and rules. No I/O, no frameworks."""
