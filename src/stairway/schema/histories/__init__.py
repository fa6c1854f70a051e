"""Migration histories kept in another tool's layout, read where they lie (docs/adopting.md).

A catalog's ``[history]`` names one: an Alembic script directory, or a directory of SQL files in
Flyway's, golang-migrate's or dbmate's layout. Each migration becomes a numbered ``Change`` in
the history's order, with its ``Origin``: the tool's own identifier and what the tool's own
bookkeeping table says once it has run, so the product's own tool keeps working.
"""
