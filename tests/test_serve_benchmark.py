"""benchmarks/serve.py starts ``parley run``, loads it and reports what it measured; its
stores are its own and gone afterwards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import serve as bench
from tests.conftest import needs_shared_data
from tests.runtime.conftest import moodbot_model  # noqa: F401 - a fixture

pytest.importorskip("uvicorn", reason="the server needs the server extra (parley[server])")


def test_script_should_take_one_example_per_intent_without_entity_marks(tmp_path: Path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "nlu.yml").write_text(
        'version: "3.1"\nnlu:\n- intent: greet\n  examples: |\n    - hi there\n    - hello\n'
        "- intent: order\n  examples: |\n    - a [pizza](food) for [two]{\"entity\": "
        '"number"}\n- synonym: pizza\n  examples: |\n    - pizzas\n')
    assert bench.script_for(tmp_path) == ["hi there", "a pizza for two"]
    assert bench.script_for(tmp_path / "rasa-init-moodbot") == bench.MOOD_SCRIPT


def test_percentiles_should_be_values_measured():
    values = [float(v) for v in range(1, 101)]
    assert bench.percentile(values, 50) == 51.0 and bench.percentile(values, 99) == 99.0
    assert bench.percentile([3.0], 99) == 3.0


@needs_shared_data
def test_benchmark_should_serve_and_report_every_message(moodbot_model: Path,  # noqa: F811
                                                         capsys: pytest.CaptureFixture[str]):
    assert bench.main(["--bot", "rasa-example-moodbot", "--model", str(moodbot_model),
                       "--conversations", "6", "--messages", "60", "--sequential", "14",
                       "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    sequential, concurrent = result["sequential"], result["concurrent"]
    assert sequential["messages"] == 14 and sequential["errors"] == 0
    assert concurrent["messages"] >= 60 and concurrent["errors"] == 0
    assert result["in_process"]["messages"] == 14 and not result["server_log_errors"]
    assert 0 < result["load_s"] < result["ready_s"] and result["peak_mb"] > 10
    assert sequential["p50_ms"] <= sequential["p99_ms"] and sequential["server_cpu_ms"] > 0
    assert result["server_threads"] >= 1 and concurrent["server_cores"] > 0


@needs_shared_data
def test_benchmark_should_share_stores_between_processes_and_clean_up(
        moodbot_model: Path, capsys: pytest.CaptureFixture[str],  # noqa: F811
        monkeypatch: pytest.MonkeyPatch):
    from tests.runtime.stores.services import REDIS_HOST, REDIS_PORT, postgres_url, redis_client

    url = postgres_url()
    redis_client()
    monkeypatch.setattr(bench, "PG", url)
    monkeypatch.setattr(bench, "REDIS", (REDIS_HOST, REDIS_PORT))
    tags: list[str] = []
    clean = bench.clean_stores
    monkeypatch.setattr(bench, "clean_stores", lambda store, tag: (tags.append(tag),
                                                                   clean(store, tag)))
    assert bench.main(["--bot", "rasa-example-moodbot", "--model", str(moodbot_model),
                       "--store", "sql", "--processes", "2", "--conversations", "4",
                       "--messages", "40", "--sequential", "7", "--no-in-process",
                       "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["processes"] == 2 and result["concurrent"]["errors"] == 0
    assert result["sequential"]["errors"] == 0 and not result["server_log_errors"]
    import redis
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    assert f"bench_{tags[0]}" not in sa.inspect(engine).get_table_names()
    engine.dispose()
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=1)
    assert not list(client.scan_iter(match=f"bench{tags[0]}*"))
    client.close()
