"""Column checks shared by every source."""

from __future__ import annotations

ISO_DATE = r"^\d{4}-\d{2}-\d{2}$"
MAX_NAME = 200
MAX_INVOICE_NUMBER = 50
MAX_REFERENCE = 20
MAX_NOTES = 500

# How a column is named to a person (rejects, reports): the schema's column → words.
LABELS = {
    "vendor_name": "vendor",
    "invoice_number": "invoice number",
    "invoice_date": "invoice date",
    "due_date": "due date",
    "post_date": "post date",
    "property_name": "property",
    "gl_account": "GL account",
    "description": "description",
    "amount_cents": "amount",
    "unit": "unit",
    "resident_name": "resident",
    "charge_code": "charge code",
    "transaction_date": "transaction date",
    "notes": "notes",
    "reference_number": "reference number",
}
