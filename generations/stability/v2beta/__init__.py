"""Stability's Stable Image API (v2beta): the contract shared with the sandbox (contract.py), typed
requests and results (types.py) and the HTTP client (client.py)."""
