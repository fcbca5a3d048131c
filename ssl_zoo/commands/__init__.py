"""Subcommands of ``ssl-zoo`` beyond the core ones, one module per job; ``cli.COMMAND_MODULES`` lists them.

Each module defines ``add_commands(sub, common)`` and builds its parsers with ``ssl_zoo.cli._command``.
"""
