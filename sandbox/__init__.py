"""A local Propexo emulator: a real HTTP server with SQLite state.

Used by the demo, the tests and users' rehearsals.
"""
