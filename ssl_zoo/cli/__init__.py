"""The ``ssl-zoo`` command line: ``main`` parses and reports errors, one module per group of subcommands."""
