"""A run shared as a link: the query string names the run and refuses anything else, and the
provenance names what was trained on what, by whom and when."""

from __future__ import annotations

import pytest

from services.training import sharing
from services.training.store import RunNotFound, RunStore
from tests.training_helpers import recorded_run


def test_share_query_and_provenance_of_a_recorded_run(data_root):
    store = RunStore()
    run = store.get_run(recorded_run(store, name="shared"))
    assert sharing.share_query(run.id) == f"?run={run.id}"
    with pytest.raises(RunNotFound):
        sharing.share_query("../etc/passwd")
    facts = {row["fact"]: row["value"] for row in sharing.provenance(run)}
    assert facts["run id"] == run.id and facts["status"] == "finished"
    assert facts["model"] == "cnn_v1" and facts["dataset"] == "demo" and facts["epochs"] == "3/3"
    assert '"batch_size": 8' in facts["hyper-parameters"] and facts["started by"] == "nobody signed in"
    assert facts["created"].endswith(" UTC")
