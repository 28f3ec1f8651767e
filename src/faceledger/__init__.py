"""faceledger: accountable face identification over controlled galleries."""

__version__ = "0.1.0"
