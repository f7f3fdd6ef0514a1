"""One live process per instance name (app/instance.py): a start leaves the jobs of a live
namesake alone, says so, and still fails what its own earlier life left running."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from app import jobs
from app.instance import InstanceName
from app.main import create_app
from app.tables import TrainingJob
from tests.app.conftest import CHANNELS, OPERATOR_KEY, WINDOW, metric, settings_for
from tests.conftest import pg_schema

CLASH = "lifeline_instance_name_clash"
POSTGRES = pytest.mark.parametrize(
    "db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)


@POSTGRES
def test_a_name_is_held_by_one_live_process_at_a_time(db_url: str) -> None:
    a, b, other = (InstanceName(db_url, n) for n in ("replica-x", "replica-x", "replica-y"))
    try:
        assert a.hold() and not a.clash
        assert not b.hold() and b.clash
        assert other.hold()
        assert a.hold()  # still its own on the next tick
        a.release()  # the process ends: its connection, and the lock, go
        assert b.hold() and not b.clash
        _drop_advisory_holders(db_url)  # a database restart: every lock goes with its session
        assert b.hold() and not b.clash  # taken again on the next tick
        assert not a.hold() and a.clash
        with pg_schema("lifeline_other") as elsewhere:  # another deployment, its own schema
            c = InstanceName(elsewhere, "replica-x")
            assert c.hold()
            c.release()
    finally:
        for n in (a, b, other):
            n.release()


def _drop_advisory_holders(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as c:
        pids = c.scalars(text("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                              "AND database = (SELECT oid FROM pg_database "
                              "WHERE datname = current_database())")).all()
        assert pids
        for pid in pids:
            c.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    engine.dispose()


@POSTGRES
def test_a_start_leaves_a_live_namesakes_job_alone_and_fails_its_own_leftovers(db_url: str
                                                                                ) -> None:
    auth = {"Authorization": f"Bearer {OPERATOR_KEY}"}
    settings = settings_for(db_url, instance_name="replica-x")
    with TestClient(create_app(settings)) as first:
        r = first.put("/v1/lines/l", headers=auth, json={"channels": CHANNELS, "window": WINDOW})
        assert r.status_code == 201, r.text
        with first.app.state.services.sessions() as s:  # type: ignore[attr-defined]
            job = jobs.enqueue(s, line_id="l", trigger="operator").id
            assert jobs.claim(s, owner="replica-x", lease_s=600) == [job]
        # a second replica given the same name by mistake, while the first one trains
        with TestClient(create_app(settings)) as namesake:
            assert metric(namesake, CLASH) == 1.0 and metric(first, CLASH) == 0.0
            with namesake.app.state.services.sessions() as s:  # type: ignore[attr-defined]
                assert s.get_one(TrainingJob, job).status == "running"
    # the first one is gone (its job left running, as a crash leaves it): a start under its
    # name is its restart, and fails the job at once
    with TestClient(create_app(settings)) as restarted:
        assert metric(restarted, CLASH) == 0.0
        with restarted.app.state.services.sessions() as s:  # type: ignore[attr-defined]
            done = s.get_one(TrainingJob, job)
            assert (done.status, done.error) == (
                "failed", "interrupted by a restart of the service; the previous model kept "
                "serving")
