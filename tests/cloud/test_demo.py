from pathlib import Path

import sqlalchemy as sa
from click.testing import CliRunner

from podium.cli import main


def test_demo_drives_the_embedded_cloud_through_its_rest_api(tmp_path: Path) -> None:
    db_file = tmp_path / "demo.sqlite"
    result = CliRunner().invoke(
        main, ["demo", "--database-url", f"sqlite:///{db_file}", "--servers", "3"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.count(" ACTIVE  on compute-") == 3
    assert "PAUSED" in result.output and "SHUTOFF" in result.output
    assert "3 servers soft-deleted" in result.output
    engine = sa.create_engine(f"sqlite:///{db_file}")
    with engine.connect() as conn:
        deleted = conn.execute(
            sa.text("SELECT count(*) FROM instances WHERE deleted != 0")
        ).scalar_one()
        live = conn.execute(
            sa.text("SELECT count(*) FROM instances WHERE deleted = 0")
        ).scalar_one()
        used = conn.execute(sa.text("SELECT sum(vcpus_used) FROM compute_nodes")).scalar_one()
    engine.dispose()
    assert (deleted, live, used) == (3, 0, 0)


def test_all_in_one_on_a_port_in_use_says_so_and_leaves_nothing_running(tmp_path: Path) -> None:
    import socket
    import threading

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        before = threading.active_count()
        result = CliRunner().invoke(
            main,
            ["all-in-one", "--data-dir", str(tmp_path), "--listen", f"127.0.0.1:{port}"],
        )
    assert result.exit_code == 1, result.output
    assert "Error:" in result.output and "Traceback" not in result.output
    assert str(port) in result.output
    # The conductor, scheduler and computes it had started are stopped again.
    assert threading.active_count() <= before
