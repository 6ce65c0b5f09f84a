"""``toolenv mcp``: one BFCL task's tools as an MCP server, one isolated episode per session.

- :mod:`~integrations.mcp.episode`: how MCP tool calls and ``end_turn`` map onto ``BFCLEnv``
  steps (no MCP dependency);
- :mod:`~integrations.mcp.server`: the server on the official ``mcp`` SDK (stdio and
  Streamable HTTP);
- :mod:`~integrations.mcp.cli`: the ``mcp`` subcommand.

Needs the ``mcp`` extra (``pip install -e '.[mcp]'``) for the server; this module imports
nothing from it, so that ``toolenv --help`` works without it.
"""
