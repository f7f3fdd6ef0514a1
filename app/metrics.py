"""Prometheus metrics. Counters live in-process; state gauges are read from the database at
scrape time, so every replica reports the same truth and nothing goes stale after a restart."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app import buffer
from app.db import DB_DOWN, utcnow
from app.jobs import OPEN
from app.lines import vouched
from app.tables import AnomalyEvent, Line, ModelVersion, TrainingJob

disable_created_metrics()  # *_created series double the scrape for no dashboard use

_RATIO_BUCKETS = (0.25, 0.5, 0.75, 0.9, 1.0, 1.1, 1.5, 2.0, 5.0, 10.0)
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_TRAIN_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800)


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.windows = Counter("lifeline_windows_scored", "Windows scored", ["line"],
                               registry=registry)
        self.anomalies = Counter("lifeline_anomalous_windows", "Windows flagged anomalous",
                                 ["line"], registry=registry)
        # Scored while the database did not answer: answered in the 503's details, stored
        # nowhere (app/scorer.py); a gateway's resend is counted again above.
        self.provisional_windows = Counter(
            "lifeline_provisional_windows_scored",
            "Windows scored while the database did not answer (not stored)", ["line"],
            registry=registry)
        self.provisional_anomalies = Counter(
            "lifeline_provisional_anomalous_windows",
            "Windows flagged anomalous while the database did not answer (not stored)",
            ["line"], registry=registry)
        # The alarm rate an operator lives with (EEMUA 191 counts alarms per hour): events,
        # not windows, since a fault's windows join one event (app/anomalies.py).
        self.events = Counter("lifeline_anomaly_events", "Anomaly events opened", ["line"],
                              registry=registry)
        # A series per channel that was ever stuck only: which sensor to look at.
        self.stuck = Counter("lifeline_stuck_channel_windows",
                             "Windows in which a channel held one reading (a stuck sensor)",
                             ["line", "channel"], registry=registry)
        self.sensor_alarms = Counter(
            "lifeline_sensor_alarm_windows",
            "Windows in which a channel's own residual passed its limit", ["line", "channel"],
            registry=registry)
        self.score_ratio = Histogram(
            "lifeline_score_ratio", "Window score / its regime's threshold", ["line"],
            buckets=_RATIO_BUCKETS, registry=registry)
        self.request_latency = Histogram(
            "lifeline_scoring_request_duration_seconds", "Scoring request latency", ["line"],
            buckets=_LATENCY_BUCKETS, registry=registry)
        self.retrain_duration = Histogram(
            "lifeline_retrain_duration_seconds", "Wall time of training jobs", ["line"],
            buckets=_TRAIN_BUCKETS, registry=registry)
        self.retrains = Counter("lifeline_retrains", "Finished training jobs by result",
                                ["line", "result"], registry=registry)

    def forget(self, line_id: str) -> None:
        """A deleted line's series leave this process's /metrics (other replicas' at their
        next restart; the database-read gauges leave every replica's at once)."""
        for metric in (self.windows, self.anomalies, self.provisional_windows,
                       self.provisional_anomalies, self.events, self.stuck, self.sensor_alarms,
                       self.score_ratio, self.request_latency, self.retrain_duration,
                       self.retrains):
            metric.remove_by_labels({"line": line_id})


def _ts(dt: datetime | None) -> float:
    return dt.timestamp() if dt else float("nan")


def _as_dt(value: datetime | str | None) -> datetime | None:
    """SQLite returns aggregates of datetime columns as text; PostgreSQL as datetimes."""
    return datetime.fromisoformat(value) if isinstance(value, str) else value


_REGIME_THRESHOLD = "lifeline_active_model_regime_threshold"
_JOB_AGE = "lifeline_training_job_age_seconds"
_UNACKED = "lifeline_anomaly_events_unacknowledged"
_VERDICTS = "lifeline_anomaly_event_verdicts"


class StateCollector(Collector):
    """Gauges derived from the database at scrape."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def collect(self) -> Iterator[GaugeMetricFamily]:
        g = {name: GaugeMetricFamily(name, doc, labels=["line"]) for name, doc in [
            ("lifeline_active_model_version", "Version serving the line"),
            ("lifeline_active_model_regimes", "Operating regimes the active model knows"),
            ("lifeline_active_model_threshold", "Largest of the active model's regime thresholds"),
            ("lifeline_gate_retention_ratio", "Active model's replay score / its teacher's"),
            ("lifeline_gate_replay_fidelity", "Share of teacher replay its teacher finds normal"),
            ("lifeline_gate_false_alarm_ratio", "False-alarm rate on held-out windows at gate"),
            ("lifeline_buffer_windows", "Raw windows in the fresh buffer"),
            ("lifeline_buffer_oldest_age_seconds", "Age of the oldest buffered window"),
            ("lifeline_buffer_dropped_windows", "Windows the bounded buffer did not keep"),
            ("lifeline_learn_flagged", "1 while an operator vouches: flagged windows are buffered"),
            ("lifeline_anomaly_event_open",
             "1 while the line is in an anomaly event (not yet event_gap_s of normal windows)"),
            ("lifeline_target_false_alarm_ratio",
             "The line's target false-alarm rate, to compare the live alarm rate with"),
            ("lifeline_last_successful_retrain_timestamp_seconds", "Unix time of last success"),
            ("lifeline_last_window_received_timestamp_seconds",
             "Unix time a window for the line last arrived, at any replica (up to 30 s behind): "
             "alert on a line gone silent, which nothing watches"),
            ("lifeline_line_silent_after_seconds",
             "Seconds without a window after which the line counts as silent (its "
             "silent_after_s): the limit of the silent-line alert"),
        ]}
        g[_REGIME_THRESHOLD] = GaugeMetricFamily(
            _REGIME_THRESHOLD, "Alarm threshold of each regime of the active model, which the "
            "regime's windows are judged against", labels=["line", "regime"])
        g[_JOB_AGE] = GaugeMetricFamily(
            _JOB_AGE, "How long the line's open training job has been queued (since created) "
            "or running (since started): alert on a retrain stuck in either",
            labels=["line", "status"])
        g[_UNACKED] = GaugeMetricFamily(
            _UNACKED, "Anomaly events no operator has acknowledged", labels=["line"])
        g[_VERDICTS] = GaugeMetricFamily(
            _VERDICTS, "Anomaly events operators judged, by verdict (fault, false_alarm): "
            "the share of faults is the alarms' precision as the plant sees it",
            labels=["line", "verdict"])
        up = GaugeMetricFamily("lifeline_database_up", "1 when the scrape read the database "
                               "(the state gauges follow); 0 when it could not: alert on it")
        try:
            with self.sessions() as s:
                lines = list(s.scalars(select(Line)))
                self._fill(s, lines, g)
                self._open_jobs(s, g[_JOB_AGE])
                self._events(s, lines, g[_UNACKED], g[_VERDICTS])
        except DB_DOWN:  # the process's own counters still answer
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from g.values()

    def _events(self, s: Session, lines: list[Line], unacked: GaugeMetricFamily,
                verdicts: GaugeMetricFamily) -> None:
        # A verdict is only ever given with an acknowledgement, so per (line, verdict) the
        # events not yet acknowledged are the total less those acknowledged.
        unseen: dict[str, int] = {}
        judged: dict[tuple[str, str], int] = {}
        for line_id, verdict, n, seen in s.execute(select(
                AnomalyEvent.line_id, AnomalyEvent.verdict, func.count(),
                func.count(AnomalyEvent.acknowledged_at)).group_by(
                AnomalyEvent.line_id, AnomalyEvent.verdict)):
            unseen[line_id] = unseen.get(line_id, 0) + n - seen
            if verdict is not None:
                judged[line_id, verdict] = n
        for line in lines:
            unacked.add_metric([line.id], unseen.get(line.id, 0))
            for verdict in ("fault", "false_alarm"):
                verdicts.add_metric([line.id, verdict], judged.get((line.id, verdict), 0))

    def _open_jobs(self, s: Session, g: GaugeMetricFamily) -> None:
        now = utcnow()
        for job in s.scalars(select(TrainingJob).where(TrainingJob.status.in_(OPEN))):
            since = _as_dt(job.started_at if job.status == "running" else job.created_at)
            if since is not None:
                g.add_metric([job.line_id, job.status], (now - since).total_seconds())

    def _fill(self, s: Session, lines: list[Line], g: dict[str, GaugeMetricFamily]) -> None:
        now = utcnow()
        oldest = buffer.oldest(s)
        ok = dict(s.execute(select(TrainingJob.line_id, func.max(TrainingJob.finished_at)).where(
            TrainingJob.status == "succeeded").group_by(TrainingJob.line_id)).all())
        active = {v.line_id: v for v in s.scalars(select(ModelVersion).where(
            ModelVersion.status == "active"))}
        for line in lines:
            old = _as_dt(oldest.get(line.id))
            age = (now - old.replace(tzinfo=now.tzinfo)).total_seconds() if old else 0.0
            g["lifeline_buffer_windows"].add_metric([line.id], line.buffer_windows)
            g["lifeline_buffer_oldest_age_seconds"].add_metric([line.id], age)
            g["lifeline_buffer_dropped_windows"].add_metric([line.id], line.buffer_dropped)
            g["lifeline_learn_flagged"].add_metric([line.id], float(vouched(line, now)))
            g["lifeline_anomaly_event_open"].add_metric([line.id],
                                                         float(line.open_event_id is not None))
            g["lifeline_target_false_alarm_ratio"].add_metric([line.id],
                                                               line.target_false_alarm_rate)
            g["lifeline_last_successful_retrain_timestamp_seconds"].add_metric(
                [line.id], _ts(_as_dt(ok.get(line.id))))
            g["lifeline_last_window_received_timestamp_seconds"].add_metric(
                [line.id], _ts(line.last_window_at))
            g["lifeline_line_silent_after_seconds"].add_metric([line.id], line.silent_after_s)
            v = active.get(line.id)
            if v is None:
                continue
            g["lifeline_active_model_version"].add_metric([line.id], v.version)
            g["lifeline_active_model_regimes"].add_metric([line.id], v.regimes)
            g["lifeline_active_model_threshold"].add_metric([line.id], v.threshold)
            for r in range(v.regimes):
                if (t := v.metrics.get(f"regime_threshold_{r}")) is not None:
                    g[_REGIME_THRESHOLD].add_metric([line.id, str(r)], float(t))
            for key, name in [("retention", "lifeline_gate_retention_ratio"),
                              ("replay_fidelity", "lifeline_gate_replay_fidelity"),
                              ("false_alarm_rate", "lifeline_gate_false_alarm_ratio")]:
                if key in v.metrics:
                    g[name].add_metric([line.id], float(v.metrics[key]))
