"""Load test of the activity tracker's ingest: concurrent clients, then exact read-back of store and rollup.

``python -m loadtest`` (``make load``) starts its own local stack unless ``--base-url`` names a running
one; see :mod:`loadtest.runner` for what is sent and what is checked.
"""
