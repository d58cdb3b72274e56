"""Rent rolls and charge files → resident charges and credits, a record kind."""
