"""Dataflows: one module per flow, plus the shared wiring and the CLI.

``fleet`` is the reference flow (a robot fleet), ``traffic`` a second, small
flow built from the same parts. ``pipeline`` wires operators into Bytewax,
``sources`` reads files and simulators, ``cli`` runs everything.
"""
