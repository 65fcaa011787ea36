"""`podium all-in-one` as a command (tests/cloud/test_client_process.py runs it as a process)."""

from pathlib import Path

from click.testing import CliRunner

from podium.cli import main


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
