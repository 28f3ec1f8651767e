"""Adapters: one heavy dependency per module, each implementing a Protocol in faceledger.ports."""
