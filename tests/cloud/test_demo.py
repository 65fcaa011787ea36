from pathlib import Path

import sqlalchemy as sa
from click.testing import CliRunner

from podium.cli import main


def test_demo_runs_the_embedded_control_plane(tmp_path: Path) -> None:
    db_file = tmp_path / "demo.sqlite"
    result = CliRunner().invoke(
        main, ["demo", "--database-url", f"sqlite:///{db_file}", "--instances", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "live instances: 1, with deleted: 2" in result.output
    assert "archive  instances: 1" in result.output
    engine = sa.create_engine(f"sqlite:///{db_file}")
    with engine.connect() as conn:
        live = conn.execute(sa.text("SELECT count(*) FROM instances")).scalar_one()
        shadow = conn.execute(sa.text("SELECT count(*) FROM shadow_instances")).scalar_one()
    engine.dispose()
    assert (live, shadow) == (1, 1)
