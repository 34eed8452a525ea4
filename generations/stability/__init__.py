"""Stability AI's v1 REST API: the contract (contract.py), typed requests and responses (types.py) and
the HTTP client (client.py)."""
