"""Errors name their real cause: the model's fault, the file system's, or a bug."""

import errno

import pytest

from pipeline.core.errors import ExportError, FileSystemError, converter_errors


def _as_export_error(exc: Exception) -> ExportError:
    return ExportError(f"the converter cannot take the model: {exc}")


def test_what_a_converter_raises_for_the_model_becomes_its_error():
    with pytest.raises(ExportError, match="cannot take the model: op Foo"), converter_errors(_as_export_error, "x"):
        raise ValueError("op Foo")


def test_a_file_system_failure_says_so_and_names_the_path():
    with pytest.raises(FileSystemError, match=r"not on the model: /out/model.tflite: No space left"), \
            converter_errors(_as_export_error, "Writing the artifact"):
        raise OSError(errno.ENOSPC, "No space left on device", "/out/model.tflite")


def test_anything_else_is_a_bug_and_keeps_its_type():
    class Surprise(Exception):
        pass

    with pytest.raises(Surprise), converter_errors(_as_export_error, "x"):
        raise Surprise("not a conversion failure")


def test_the_cli_reports_a_bug_as_internal_with_its_traceback(monkeypatch, tmp_path, capsys):
    from pipeline import cli

    def broken(args):
        raise ZeroDivisionError("division by zero in a handler")

    monkeypatch.setattr(cli, "cmd_sweep", broken)
    code = cli.main(["sweep", "--dry-run", "--workspace", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1 and "internal error (ZeroDivisionError" in err and "not a problem with your input" in err
    log = tmp_path / "logs" / "internal-errors.log"
    assert "Traceback" in log.read_text() and "division by zero in a handler" in log.read_text()
