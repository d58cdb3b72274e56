"""Vendor bills → invoices, a record kind."""
