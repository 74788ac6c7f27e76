"""Domain logic of lucidstream: plain Python, no Bytewax.

Each module holds one idea (the event contract, the clock, freshness, decision
IDs, rules, the online model, modes, the decider that composes them) and can be
used and tested on its own. Flows in ``flows/`` wire these into Bytewax.
"""
