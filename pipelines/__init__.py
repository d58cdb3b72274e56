"""tieout: spreadsheets into Rent Manager through Propexo, exactly once, provably."""

__version__ = "0.1.0"
