"""The metadata store suite: one class of tests, run on SQLite and on PostgreSQL."""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from forgeml.errors import NotFoundError, SchemaOutdatedError, SchemaTooNewError
from forgeml.store import Database, RunStatus, current_revision, upgrade
from forgeml.store.datasets import DatasetRepository, NewDatasetVersion
from forgeml.store.lineage import LineageRepository
from forgeml.store.migrations import HEAD, REVISIONS
from forgeml.store.models import ModelRepository, NewVersion
from forgeml.store.records import ArtifactRecord, LineageEdge
from forgeml.store.run_filter import parse_filter, parse_order_by
from forgeml.store.runs import NewRun, RunRepository


def new_run(repo: RunRepository, experiment: str = "exp", name: str = "r", **kw: object) -> str:
    run_id = uuid.uuid4().hex
    repo.create_run(
        NewRun(
            id=run_id,
            experiment_id=repo.get_or_create_experiment(experiment),
            name=name,
            user="tester",
            start_time=float(kw.pop("start_time", time.time())),  # type: ignore[arg-type]
            parent_id=kw.pop("parent_id", None),  # type: ignore[arg-type]
            git_sha=None,
            git_dirty=None,
            command="pytest",
            host="localhost",
            environment_digest=None,
        )
    )
    return run_id


def version(run_id: str | None = None, digest: str = "a" * 64) -> NewVersion:
    return NewVersion(
        run_id, "sklearn", digest, 10, {"inputs": {"type": "tensor"}}, None, "tester", {}
    )


class StoreSuite:
    """Every backend must pass all of these. Subclasses provide the ``url`` fixture."""

    @pytest.fixture
    def db(self, url: str) -> Iterator[Database]:
        database = Database(url)
        yield database
        database.dispose()

    @pytest.fixture
    def runs(self, db: Database) -> RunRepository:
        return RunRepository(db)

    @pytest.fixture
    def models(self, db: Database) -> ModelRepository:
        return ModelRepository(db)

    # -- schema -------------------------------------------------------------------------
    def test_empty_database_gets_the_head_schema(self, db: Database) -> None:
        assert current_revision(db) == HEAD
        tables = set(inspect(db.engine).get_table_names())
        assert {"runs", "metrics", "latest_metrics", "model_versions", "lineage_edges"} <= tables

    def test_migrations_create_exactly_the_declared_schema(self, db: Database) -> None:
        from alembic.autogenerate import compare_metadata
        from alembic.migration import MigrationContext

        from forgeml.store.schema import metadata

        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diff == []

    def test_head_constant_matches_the_newest_revision_script(self) -> None:
        from alembic.config import Config
        from alembic.script import ScriptDirectory

        config = Config()
        config.set_main_option("script_location", "forgeml.store:migrations")
        script = ScriptDirectory.from_config(config)
        assert script.get_current_head() == HEAD
        assert [r.revision for r in reversed(list(script.walk_revisions()))] == list(REVISIONS)

    def test_an_older_schema_is_refused_with_the_upgrade_command(self, url: str) -> None:
        old = Database(url, check_schema=False)
        upgrade(old, REVISIONS[0])
        repo = RunRepository(old)
        run_id = new_run(repo, "kept")
        with pytest.raises(SchemaOutdatedError, match=r"forgeml db upgrade") as info:
            Database(url)
        assert f"revision {REVISIONS[0]}" in str(info.value)
        assert upgrade(old) == HEAD
        reopened = Database(url)
        assert RunRepository(reopened).get_run(run_id).experiment == "kept"
        old.dispose()
        reopened.dispose()

    def test_a_newer_schema_is_refused(self, db: Database, url: str) -> None:
        with db.write() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        with pytest.raises(SchemaTooNewError, match="9999"):
            Database(url)

    # -- runs ---------------------------------------------------------------------------
    def test_run_lifecycle_and_batched_values(self, runs: RunRepository) -> None:
        run_id = new_run(runs, "flights", "gbm")
        runs.write_batch(
            params=[(run_id, "max_depth", "6"), (run_id, "model", "gbm")],
            tags=[(run_id, "team", "risk")],
            metrics=[(run_id, "auc", 0.8, 0, 1.0), (run_id, "auc", 0.9, 1, 2.0)],
        )
        runs.write_batch(
            tags=[(run_id, "team", "fraud")],
            finishes=[(run_id, RunStatus.FINISHED, time.time(), None, {"cpu_percent": 50.0})],
        )
        run = runs.get_run(run_id)
        assert run.status is RunStatus.FINISHED
        assert run.params == {"max_depth": "6", "model": "gbm"}
        assert run.metrics == {"auc": 0.9}
        assert run.tags == {"team": "fraud"}
        assert run.system == {"cpu_percent": 50.0}
        assert run.experiment == "flights"
        assert [p.value for p in runs.metric_history(run_id, "auc")] == [0.8, 0.9]

    def test_latest_metric_is_the_highest_step_not_the_last_written(
        self, runs: RunRepository
    ) -> None:
        run_id = new_run(runs)
        runs.write_batch(metrics=[(run_id, "loss", 0.1, 10, 1.0)])
        runs.write_batch(metrics=[(run_id, "loss", 0.9, 2, 5.0)])  # a late, older step
        assert runs.get_run(run_id).metrics["loss"] == 0.1
        runs.write_batch(metrics=[(run_id, "loss", 0.05, 10, 6.0)])  # same step, newer
        assert runs.get_run(run_id).metrics["loss"] == 0.05

    def test_metric_trend_reduces_a_history_in_the_database(self, runs: RunRepository) -> None:
        run_id = new_run(runs)
        runs.write_batch(metrics=[(run_id, "loss", float(step), step, 1.0) for step in range(1000)])
        count, trend = runs.metric_trend(run_id, "loss", buckets=10)
        assert count == 1000
        assert trend == [49.5 + 100 * bucket for bucket in range(10)]
        assert runs.metric_trend(run_id, "missing") == (0, [])

    def test_nan_and_infinity_round_trip(self, runs: RunRepository) -> None:
        run_id = new_run(runs)
        runs.write_batch(
            metrics=[
                (run_id, "a", math.nan, 0, 1.0),
                (run_id, "b", math.inf, 0, 1.0),
                (run_id, "c", -math.inf, 0, 1.0),
            ]
        )
        metrics = runs.get_run(run_id).metrics
        assert math.isnan(metrics["a"])
        assert metrics["b"] == math.inf
        assert metrics["c"] == -math.inf

    def test_a_param_is_written_once(self, runs: RunRepository) -> None:
        run_id = new_run(runs)
        runs.write_batch(params=[(run_id, "lr", "0.1")])
        runs.write_batch(params=[(run_id, "lr", "0.1")])
        assert runs.get_run(run_id).params == {"lr": "0.1"}

    def test_unknown_run_is_not_found(self, runs: RunRepository) -> None:
        with pytest.raises(NotFoundError):
            runs.get_run("0" * 32)
        with pytest.raises(NotFoundError):
            runs.resolve_run_id("abcdef")

    def test_run_id_prefix_resolves(self, runs: RunRepository) -> None:
        run_id = new_run(runs)
        assert runs.resolve_run_id(run_id[:8]) == run_id

    def test_experiments_are_created_once(self, runs: RunRepository) -> None:
        first = runs.get_or_create_experiment("e1")
        assert RunRepository(runs.db).get_or_create_experiment("e1") == first
        assert [e.name for e in runs.list_experiments()] == ["e1"]

    def test_artifact_records(self, runs: RunRepository) -> None:
        run_id = new_run(runs)
        runs.add_artifacts(run_id, [ArtifactRecord("plots/a.png", "b" * 64, 3, 1.0)])
        runs.add_artifacts(run_id, [ArtifactRecord("plots/a.png", "c" * 64, 4, 2.0)])
        assert [(a.path, a.digest, a.size) for a in runs.list_artifacts(run_id)] == [
            ("plots/a.png", "c" * 64, 4)
        ]
        with pytest.raises(NotFoundError):
            runs.add_artifacts("f" * 32, [ArtifactRecord("x", "b" * 64, 1, 1.0)])

    # -- search -------------------------------------------------------------------------
    @pytest.fixture
    def population(self, runs: RunRepository) -> dict[str, str]:
        """Six runs with known params, metrics and tags; name -> id."""
        spec = [
            ("r1", "gbm", 0.95, "6", "risk"),
            ("r2", "gbm", 0.91, "4", "fraud"),
            ("r3", "lr", 0.93, "n/a", "risk"),
            ("r4", "gbm", 0.85, "10", None),
            ("r5", "rf", math.nan, "6.0", "risk"),
            ("r6", "lr", 0.70, "2", None),
        ]
        ids = {}
        for index, (name, model, auc, depth, team) in enumerate(spec):
            run_id = new_run(runs, "exp" if index < 5 else "other", name, start_time=1000 + index)
            tags = [(run_id, "team", team)] if team else []
            runs.write_batch(
                params=[(run_id, "model", model), (run_id, "depth", depth)],
                tags=tags,
                metrics=[(run_id, "auc", auc, 0, 1.0)],
            )
            ids[name] = run_id
        runs.write_batch(finishes=[(ids["r2"], RunStatus.FAILED, 2000.0, "boom", None)])
        return ids

    def search(
        self,
        runs: RunRepository,
        query: str,
        order: list[str] | None = None,
        experiments: list[str] | None = None,
    ) -> list[str]:
        ids, _ = runs.search(
            parse_filter(query), experiments, [parse_order_by(o) for o in order or []], 100, 0
        )
        return [r.name for r in runs.get_runs(ids)]

    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            ("metrics.auc > 0.9", {"r1", "r2", "r3"}),
            ("metrics.auc >= 0.91 and params.model = 'gbm'", {"r1", "r2"}),
            ("metrics.auc < 0.9 or tags.team = 'fraud'", {"r2", "r4", "r6"}),
            ("params.model != 'gbm'", {"r3", "r5", "r6"}),
            ("params.model in ('lr', 'rf')", {"r3", "r5", "r6"}),
            ("params.model not in ('lr', 'rf')", {"r1", "r2", "r4"}),
            ("params.depth > 5", {"r1", "r4", "r5"}),
            ("params.depth = 6", {"r1", "r5"}),
            ("params.depth = '6'", {"r1"}),
            ("params.depth like 'n%'", {"r3"}),
            ("tags.team is null", {"r4", "r6"}),
            ("tags.team is not null and not tags.team = 'risk'", {"r2"}),
            ("status = 'failed'", {"r2"}),
            ("name like 'r%' and start_time >= 1004", {"r5", "r6"}),
            ("metrics.missing > 0", set()),
            ("tags.TEAM ilike 'RI%'", set()),
            ("tags.team ilike 'RI%'", {"r1", "r3", "r5"}),
            ("", {"r1", "r2", "r3", "r4", "r5", "r6"}),
        ],
    )
    def test_filters(
        self, runs: RunRepository, population: dict[str, str], query: str, expected: set[str]
    ) -> None:
        assert set(self.search(runs, query)) == expected

    def test_order_by_metric_puts_missing_and_nan_last(
        self, runs: RunRepository, population: dict[str, str]
    ) -> None:
        assert self.search(runs, "", ["metrics.auc desc"]) == ["r1", "r3", "r2", "r4", "r6", "r5"]
        assert self.search(runs, "", ["metrics.auc asc"]) == ["r6", "r4", "r2", "r3", "r1", "r5"]

    def test_order_by_param_is_numeric_where_numbers(
        self, runs: RunRepository, population: dict[str, str]
    ) -> None:
        order = self.search(runs, "", ["params.depth asc", "name asc"])
        assert order == ["r6", "r2", "r1", "r5", "r4", "r3"]

    def test_default_order_is_newest_first_and_experiments_filter(
        self, runs: RunRepository, population: dict[str, str]
    ) -> None:
        assert self.search(runs, "", experiments=["exp"]) == ["r5", "r4", "r3", "r2", "r1"]
        assert self.search(runs, "", experiments=["other"]) == ["r6"]
        assert self.search(runs, "", experiments=["nope"]) == []

    def test_paging_visits_every_run_once(
        self, runs: RunRepository, population: dict[str, str]
    ) -> None:
        seen: list[str] = []
        offset: int | None = 0
        while offset is not None:
            ids, offset = runs.search(None, None, [parse_order_by("metrics.auc desc")], 4, offset)
            seen += ids
        assert sorted(seen) == sorted(population.values())
        assert runs.count(parse_filter("metrics.auc > 0.9"), None) == 3

    # -- registry -----------------------------------------------------------------------
    def test_versions_are_numbered_and_linked(
        self, runs: RunRepository, models: ModelRepository
    ) -> None:
        run_id = new_run(runs)
        v1 = models.create_version("churn", version(run_id))
        v2 = models.create_version("churn", version(None, "b" * 64))
        assert (v1.version, v2.version) == (1, 2)
        assert v1.run_id == run_id
        assert models.latest_version("churn").manifest_digest == "b" * 64
        assert [v.version for v in models.list_versions("churn")] == [2, 1]
        assert [v.version for v in models.versions_of_run(run_id)] == [1]
        assert models.get_model("churn").latest_version == 2
        with pytest.raises(NotFoundError):
            models.get_version("churn", 3)
        with pytest.raises(NotFoundError):
            models.get_model("nope")

    def test_concurrent_version_creation_never_reuses_a_number(
        self, models: ModelRepository
    ) -> None:
        numbers: list[int] = []
        errors: list[BaseException] = []

        def register() -> None:
            try:
                for _ in range(5):
                    numbers.append(models.create_version("race", version()).version)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=register) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert sorted(numbers) == list(range(1, 21))

    def test_aliases_move_and_every_move_is_audited(self, models: ModelRepository) -> None:
        for _ in range(3):
            models.create_version("churn", version())
        models.set_alias("churn", "champion", 1, "alice", "first")
        models.set_alias("churn", "champion", 3, "bob", "better auc")
        models.set_alias("churn", "challenger", 2, "bob")
        assert models.resolve_alias("churn", "champion").version == 3
        assert models.get_version("churn", 3).aliases == ("champion",)
        assert models.get_model("churn").aliases == {"challenger": 2, "champion": 3}
        models.set_alias("churn", "challenger", None, "carol")
        with pytest.raises(NotFoundError):
            models.resolve_alias("churn", "challenger")
        history = [
            (e.alias, e.from_version, e.to_version, e.actor, e.reason)
            for e in models.alias_history("churn")
        ]
        assert history == [
            ("champion", None, 1, "alice", "first"),
            ("champion", 1, 3, "bob", "better auc"),
            ("challenger", None, 2, "bob", None),
            ("challenger", 2, None, "carol", None),
        ]
        assert len(models.alias_history("churn", "champion")) == 2

    def test_alias_to_a_missing_version_changes_nothing(self, models: ModelRepository) -> None:
        models.create_version("churn", version())
        with pytest.raises(NotFoundError):
            models.set_alias("churn", "champion", 7, "alice")
        assert models.alias_history("churn") == []

    def test_tags(self, models: ModelRepository) -> None:
        models.create_version("churn", version())
        models.set_model_tags("churn", {"owner": "risk"})
        models.set_version_tags("churn", 1, {"validated": "yes"})
        assert models.get_model("churn").tags == {"owner": "risk"}
        assert models.get_version("churn", 1).tags == {"validated": "yes"}

    # -- datasets -----------------------------------------------------------------------
    def dataset_version(self, digest: str, rows: int = 10) -> NewDatasetVersion:
        return NewDatasetVersion(
            digest,
            100,
            rows,
            [{"name": "x", "type": "int64"}],
            {"kind": "test"},
            {"row_count": rows},
            None,
            "tester",
        )

    def test_dataset_versions_are_numbered_by_content(self, db: Database) -> None:
        repo = DatasetRepository(db)
        first, created = repo.add_version("flights", self.dataset_version("a" * 64), "NYC 2013")
        again, created_again = repo.add_version("flights", self.dataset_version("a" * 64))
        second, _ = repo.add_version("flights", self.dataset_version("b" * 64, rows=20))
        assert (first.version, created, again.version, created_again) == (1, True, 1, False)
        assert second.version == 2 and second.row_count == 20
        assert repo.get_version("flights").version == 2
        assert repo.get_version("flights", 1).digest == "a" * 64
        found = repo.find_digest("flights", "b" * 64)
        assert found is not None and found.version == 2
        assert repo.find_digest("flights", "f" * 64) is None
        assert repo.find_digest("other", "a" * 64) is None
        assert [v.version for v in repo.list_versions("flights")] == [2, 1]
        [summary] = repo.list_datasets()
        assert (summary.name, summary.latest_version, summary.versions, summary.description) == (
            "flights",
            2,
            2,
            "NYC 2013",
        )
        with pytest.raises(NotFoundError, match="has no version 9"):
            repo.get_version("flights", 9)
        with pytest.raises(NotFoundError, match="no dataset named 'nope'"):
            repo.get_version("nope")

    def test_concurrent_dataset_versions(self, db: Database) -> None:
        repo = DatasetRepository(db)
        numbers: list[int] = []
        errors: list[BaseException] = []

        def add(worker: int) -> None:
            try:
                for i in range(5):
                    digest = f"{worker:032d}{i:032d}"
                    numbers.append(
                        repo.add_version("race", self.dataset_version(digest))[0].version
                    )
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=add, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert sorted(numbers) == list(range(1, 21))

    def test_validations_and_profiles_are_kept(self, db: Database) -> None:
        repo = DatasetRepository(db)
        version, _ = repo.add_version("flights", self.dataset_version("c" * 64))
        repo.set_profile(version.id, {"row_count": 10, "columns": {}})
        repo.add_validation(version, "basic", False, 2, 1, {"results": []}, None, "tester")
        repo.add_validation(version, "basic", True, 0, 0, {"results": []}, None, "tester")
        assert repo.get_version("flights").profile == {"row_count": 10, "columns": {}}
        found = repo.list_validations("flights", 1)
        assert [(v.success, v.errors, v.warnings) for v in found] == [(True, 0, 0), (False, 2, 1)]
        assert repo.list_validations("flights", 2) == []

    # -- lineage ------------------------------------------------------------------------
    def test_lineage_edges_are_idempotent_and_found_both_ways(self, db: Database) -> None:
        repo = LineageRepository(db)
        edge = LineageEdge("dataset_version", "flights/1", "run", "r1", "used", time.time())
        repo.add_edges([edge, edge])
        repo.add_edges([LineageEdge("run", "r1", "model_version", "m/1", "produced", time.time())])
        down = repo.edges_touching([("dataset_version", "flights/1")], "down")
        assert [(e.dst_type, e.dst_id) for e in down] == [("run", "r1")]
        up = repo.edges_touching([("model_version", "m/1"), ("run", "r1")], "up")
        assert sorted((e.src_type, e.src_id) for e in up) == [
            ("dataset_version", "flights/1"),
            ("run", "r1"),
        ]


class TestSQLiteStore(StoreSuite):
    @pytest.fixture
    def url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'store.db'}"

    def test_a_stored_0001_database_upgrades_with_its_data(self, tmp_path: Path) -> None:
        """A database written by an older forgeml (kept as a SQL dump) upgrades intact."""
        import sqlite3

        path = tmp_path / "legacy.db"
        dump = Path(__file__).parent / "fixtures" / "forgeml-0001.sql"
        with sqlite3.connect(path) as conn:
            conn.executescript(dump.read_text())
        url = f"sqlite:///{path}"
        with pytest.raises(SchemaOutdatedError) as info:
            Database(url)
        assert str(info.value) == (
            f"the metadata database {url} is at schema revision 0001, this forgeml needs "
            f"{HEAD}: upgrade it with `forgeml db upgrade`"
        )
        legacy = Database(url, check_schema=False)
        assert upgrade(legacy) == HEAD
        legacy.dispose()
        db = Database(url)
        run = RunRepository(db).get_run("0123456789abcdef0123456789abcdef")
        assert (run.experiment, run.name, run.status) == ("legacy", "old-run", RunStatus.FINISHED)
        assert (run.params, run.tags, run.system) == (
            {"lr": "0.1"},
            {"team": "risk"},
            {"cpu_percent": 97.5},
        )
        assert run.metrics == {"auc": pytest.approx(0.84)}
        assert len(RunRepository(db).metric_history(run.id, "auc")) == 5
        assert ModelRepository(db).list_models() == []
        db.dispose()

    def test_wal_mode_is_on(self, db: Database) -> None:
        with db.read() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


@pytest.mark.postgres
class TestPostgresStore(StoreSuite):
    @pytest.fixture
    def url(self, postgres_schema_url: str) -> str:
        from forgeml.config import normalize_db_url

        return normalize_db_url("url", postgres_schema_url, "test", Path.cwd())
