"""A local Propexo emulator: a real HTTP server with SQLite state, for the demo, tests and rehearsals."""
