"""The activity tracker's shared domain package, shipped to every function as a Lambda layer.

Dependencies point one way (checked by ``make lint``, contracts in ``pyproject.toml``):

- ``rest`` (the Powertools resolver, error mapping, entry point) and the logic modules
  (``events``, ``tenants``, ``auth``, ``rollup``, ``stats``, ``erasure``) import
- ``interfaces`` (every store protocol and the exceptions they raise), which
- ``adapters`` implements: the only subpackage that imports boto3 or botocore.
- ``models`` (HTTP boundary), ``records`` (stored items), ``aggregates``, ``settings`` and the
  helpers below them are shared by all.

The functions (``functions/*/app.py``) wire an adapter to the logic that needs it.
"""
