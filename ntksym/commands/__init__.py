"""Subcommands that live next to their subject; :mod:`ntksym.cli` registers each module here.

Every module defines ``register(subparsers) -> {command name: handler(args) -> int}``.
"""
