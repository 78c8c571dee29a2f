"""The activity tracker's shared domain package, shipped to every function as a Lambda layer.

Dependencies point one way: ``http`` (handler glue) -> logic (``events``, ``tenants``,
``auth``) -> ``storage`` (interfaces) <- ``dynamodb`` (the only module that imports boto3).
``models`` and ``records`` are shared by all of them.
"""
