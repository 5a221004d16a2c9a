"""Local tools and tests sign like the synthetic probe does (one implementation)."""

from functions.stripe_signature import sign, signature

__all__ = ["sign", "signature"]
