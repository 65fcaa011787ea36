"""The reference application: a small IaaS control plane built only on podium's layers.

The framework never imports this package.
"""
