"""Keeps rfc3987-syntax out of this server's Ray processes (main.py puts this folder first on
their PYTHONPATH): importing it raises ImportError, as if the package were not installed.

Every Ray process (the driver, the dashboard agent, the runtime-env agent, the monitors, every
worker) imports `jsonschema` at start-up (`ray.runtime_env` -> `plugin_schema_manager`), and
jsonschema (4.26 here) imports `rfc3987_syntax` for its optional `iri` format checkers whenever
it is installed. rfc3987-syntax 1.1.0 compiles a Lark Earley grammar at import time: about 2 s
of CPU per process, which makes `import ray` take 2.5 s instead of 0.6 s here, in each of the
eleven processes of this server (python-jsonschema/jsonschema#1428). It is in this
environment only because Jupyter asks for `jsonschema[format-nongpl]`; Ray never checks a
format, and jsonschema skips the `iri` checkers, silently, when the import fails.
"""

raise ImportError("rfc3987_syntax is kept out of the Ray processes of servers/ray-serve (see this file)")
