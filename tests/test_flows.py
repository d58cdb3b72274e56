"""The record kinds as flows (#17): every kind has every function, and no module outside the
flows decides anything by kind."""

from __future__ import annotations

import re
from dataclasses import fields

import pandas as pd
import pytest

from pipelines.kinds.charge import kind as charges
from pipelines.kinds.flows import FLOWS, SYNC_SCOPE, Flow, flow_for_record, flow_for_source, of_flow
from pipelines.kinds.invoice import kind as bills
from tests.conftest import ROOT

KINDS_DIR = ROOT / "pipelines" / "kinds"


@pytest.mark.parametrize("kind", sorted(FLOWS))
def test_every_flow_has_every_function_from_its_own_module(kind: str) -> None:
    flow = FLOWS[kind]
    module = {"vendor_bill": bills, "charge": charges}[kind]
    for field in fields(Flow):
        value = getattr(flow, field.name)
        assert value is not None and value != (), field.name
        if callable(value) and not isinstance(value, type):
            assert value.__module__ == module.__name__, (field.name, value.__module__)
    assert set(flow.write_paths) == set(flow.record_kinds)
    assert all(flow_for_record(k) is flow for k in flow.record_kinds)
    assert all(SYNC_SCOPE[k] == (flow.sync_model, flow.dated_sync) for k in flow.record_kinds)


def test_an_unknown_kind_is_refused_not_treated_as_a_charge() -> None:
    with pytest.raises(ValueError, match="no flow for record kind 'payment'"):
        flow_for_record("payment")
    with pytest.raises(ValueError, match="no flow for source kind 'payments'"):
        flow_for_source("payments")
    records = pd.DataFrame({"kind": ["charge", "payment"], "record_key": ["a", "b"]})
    with pytest.raises(ValueError, match="payment"):
        of_flow(records, FLOWS["charge"])


def test_no_module_outside_the_flows_decides_by_record_kind() -> None:
    """What made "anything not an invoice is a charge" possible: `kind == "invoice"`,
    `["kind"] != "invoice"`, `.eq("credit")` outside the flow modules. (Profile drafting
    still tells a rent roll from a bill export by the profile's source kind.)"""
    record_kind = r"(invoice|charge|credit)"
    decides = re.compile(
        rf"""(==|!=|\.eq\(|\.ne\()\s*["'](invoice|credit)["']"""
        rf"""|(\.kind|\["kind"\])\s*(==|!=)\s*["']{record_kind}["']"""
        rf"""|\["kind"\]\.(eq|ne|isin)\(\s*["'(\[]"""
    )
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sorted((ROOT / "pipelines").rglob("*.py"))
        if KINDS_DIR not in path.parents
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if decides.search(line)
    ]
    assert offenders == []
