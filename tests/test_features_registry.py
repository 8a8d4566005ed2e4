"""Feature definitions: versions by content, diffs, the CLI, on both metadata backends."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import forgeml as fm
from forgeml.errors import InvalidArgumentError, NotFoundError
from forgeml.features.registry import TransformChangedError
from forgeml_cli import cli, cli_json


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "trips.parquet"
    pd.DataFrame(
        {
            "driver_id": [1, 1, 2, 3],
            "ts": pd.to_datetime(
                ["2024-01-01 08:00", "2024-01-02 08:00", "2024-01-01 00:00", "2024-01-03 00:00"]
            ),
            "rating": [4.0, 4.5, 3.0, 5.0],
            "trips": [10, 12, 7, 1],
        }
    ).to_parquet(path)
    return path


def _view(source: Path, ttl_hours: float = 24, **kwargs: Any) -> fm.FeatureView:
    return fm.FeatureView(
        "driver_stats",
        entities=[fm.Entity("driver", join_keys=["driver_id"])],
        source=str(source),
        timestamp_field="ts",
        ttl=dt.timedelta(hours=ttl_hours),
        **kwargs,
    )


def test_versions_change_only_with_the_definition(any_backend: str, source: Path) -> None:
    first = fm.features.apply(_view(source, features=["rating", "trips"]))[0]
    again = fm.features.apply(_view(source, features=["rating", "trips"], description="same"))[0]
    longer = fm.features.apply(_view(source, ttl_hours=48, features=["rating", "trips"]))[0]
    assert (first.version, again.version, longer.version) == (1, 1, 2)
    assert fm.features.resolve("driver_stats").version == 2
    assert fm.features.resolve("driver_stats", 1).ttl_seconds == 24 * 3600
    text = fm.features.diff("driver_stats")
    assert '-  "ttl_seconds": 86400.0' in text and '+  "ttl_seconds": 172800.0' in text


def test_features_are_inferred_from_the_source(home: Path, source: Path) -> None:
    version = fm.features.apply(_view(source))[0]
    assert version.features == ["rating", "trips"]


def test_transform_code_is_part_of_the_version(home: Path, source: Path) -> None:
    def scaled(rows: pd.DataFrame) -> pd.DataFrame:
        rows["rating"] = rows["rating"] / 5
        return rows

    def shifted(rows: pd.DataFrame) -> pd.DataFrame:
        rows["rating"] = rows["rating"] - 1
        return rows

    a = fm.features.apply(_view(source, features=["rating"], transform=scaled))[0]
    b = fm.features.apply(_view(source, features=["rating"], transform=shifted))[0]
    assert (a.version, b.version) == (1, 2)
    assert a.record.code_hash != b.record.code_hash
    diff = fm.features.diff("driver_stats", 1, 2)
    assert '-    rows["rating"] = rows["rating"] / 5' in diff
    assert '+    rows["rating"] = rows["rating"] - 1' in diff


def test_bad_definitions_are_refused_with_the_reason(home: Path, source: Path) -> None:
    driver = fm.Entity("driver", join_keys=["driver_id"])
    with pytest.raises(InvalidArgumentError, match="join key or the timestamp"):
        fm.FeatureView(
            "v", entities=[driver], source=str(source), timestamp_field="ts", features=["ts"]
        )
    with pytest.raises(InvalidArgumentError, match="ttl must be positive"):
        fm.FeatureView("v", entities=[driver], source=str(source), timestamp_field="ts", ttl=0)
    with pytest.raises(InvalidArgumentError, match="unsupported feature source"):
        fm.FeatureView("v", entities=[driver], source=42, timestamp_field="ts")
    with pytest.raises(fm.ForgeMLError, match="no column 'speed'"):
        fm.features.training_frame(
            pd.DataFrame({"driver_id": [1], "at": pd.to_datetime(["2024-01-05"])}),
            [
                fm.FeatureView(
                    "v",
                    entities=[driver],
                    source=str(source),
                    timestamp_field="ts",
                    features=["speed"],
                )
            ],
        )
    with pytest.raises(NotFoundError, match="forgeml features apply"):
        fm.features.resolve("never-applied")


def test_transform_edited_after_apply_is_refused_in_another_process(
    home: Path, source: Path, tmp_path: Path
) -> None:
    module = tmp_path / "defs.py"
    body = f"""
        import forgeml as fm
        driver = fm.Entity("driver", join_keys=["driver_id"])
        def scale(rows):
            rows["rating"] = rows["rating"] * {{factor}}
            return rows
        stats = fm.FeatureView("driver_stats", entities=[driver], source={str(source)!r},
                               timestamp_field="ts", features=["rating"], transform=scale)
    """
    module.write_text(textwrap.dedent(body).format(factor=2))
    cli("features", "apply", str(module))
    script = (
        "import forgeml as fm, pandas as pd\n"
        "rows = pd.DataFrame({'driver_id': [1], 'at': pd.to_datetime(['2024-01-05'])})\n"
        "print(fm.features.training_frame(rows, ['driver_stats:rating'])['rating'][0])\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert float(run.stdout.strip()) == 9.0  # 4.5 * 2, from the file the view was applied from
    module.write_text(textwrap.dedent(body).format(factor=3))
    # rows computed by the registered code stay valid; new source rows need that code
    frame = pd.read_parquet(source)
    pd.concat([frame, frame.tail(1)]).to_parquet(source)
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert run.returncode != 0
    assert (
        TransformChangedError.__name__ in run.stderr and "apply the definitions again" in run.stderr
    )


def test_cli_apply_list_show_diff_materialize_get(home: Path, source: Path, tmp_path: Path) -> None:
    module = tmp_path / "defs.py"
    template = textwrap.dedent(
        f"""
        import datetime as dt
        import forgeml as fm
        driver = fm.Entity("driver", join_keys=["driver_id"])
        stats = fm.FeatureView("driver_stats", entities=[driver], source={str(source)!r},
                               timestamp_field="ts", features=["rating", "trips"],
                               ttl=dt.timedelta(hours=TTL))
        """
    )
    module.write_text(template.replace("TTL", "24"))
    applied = cli_json("features", "apply", str(module))
    assert applied["views"][0]["version"] == 1 and applied["views"][0]["changed"]
    assert cli_json("features", "apply", str(module))["views"][0]["changed"] is False
    module.write_text(template.replace("TTL", "72"))
    assert cli_json("features", "apply", str(module))["views"][0]["version"] == 2
    listed = cli_json("features", "list")
    assert [(v["view"], v["version"], v["online_version"]) for v in listed] == [
        ("driver_stats", 2, None)
    ]
    assert "ttl_seconds" in cli("features", "diff", "driver_stats").stdout
    done = cli_json("features", "materialize", "--end", "2024-02-01T00:00:00")
    assert done[0]["entities_written"] == 3 and done[0]["full"] is True
    assert cli_json("features", "list")[0]["online_version"] == 2
    shown = cli_json("features", "show", "driver_stats")
    assert shown["materializations"][0]["entities_written"] == 3
    got = json.loads(
        cli(
            "features",
            "get",
            "driver_stats:*",
            "-e",
            "driver_id=1",
            "--as-of",
            "2024-01-02T12:00:00",
        ).stdout
    )
    assert got == {"driver_id": 1, "rating": 4.5, "trips": 12}
    failed = cli("features", "get", "driver_stats:speed", "-e", "driver_id=1", check=False)
    assert failed.returncode == 2 and "no feature 'speed'" in failed.stderr
    assert cli("features", "skew", "driver_stats").returncode == 0
