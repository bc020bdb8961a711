"""Local Spark's class archive (airline_local/glue/spark_conf.py, class_archive.py): which JVM
options map it, and that a build puts an archive at its path only when the training run succeeded.
That the JVMs really map it: tests/local/test_warm_workers.py."""

from __future__ import annotations

import sys

import pytest

from airline_local.glue import class_archive, spark_conf


def test_the_name_changes_with_the_java_build_the_pyspark_release_and_the_jar_directory():
    base = ("openjdk 17.0.15 build 17.0.15+6", "3.5.4", "/venv/pyspark/jars")
    name = spark_conf.class_archive_name(*base)
    assert name == spark_conf.class_archive_name(*base) and name.endswith(".jsa")
    for index, other in enumerate(("openjdk 17.0.16 build 17.0.16+8", "3.5.5", "/other/pyspark/jars")):
        changed = list(base)
        changed[index] = other
        assert spark_conf.class_archive_name(*changed) != name


@pytest.fixture
def archive_at(monkeypatch, tmp_path):
    """Point this environment's archive at a path under tmp_path (its directory may hold a space)."""

    def at(name: str = "spark-classes-test.jsa", folder: str = "share"):
        path = tmp_path / folder / name
        monkeypatch.setattr(spark_conf, "class_archive_path", lambda: path)
        monkeypatch.delenv(spark_conf.CLASS_ARCHIVE_VARIABLE, raising=False)
        monkeypatch.delenv(spark_conf.SPARK_JAVA_OPTIONS_VARIABLE, raising=False)
        return path

    return at


def test_no_option_until_the_archive_exists_then_it_is_mapped_quietly(archive_at):
    path = archive_at()
    assert spark_conf.class_archive_options() == []
    assert "spark.driver.extraJavaOptions" not in spark_conf.local_spark_conf()
    path.parent.mkdir()
    path.write_bytes(b"archive")
    assert spark_conf.class_archive_options() == [f"-XX:SharedArchiveFile={path}", "-Xlog:cds=off",
                                                  "-Xlog:cds+dynamic=off"]


def test_the_options_of_the_environment_follow_the_archives_and_off_turns_it_off(archive_at, monkeypatch):
    path = archive_at()
    path.parent.mkdir()
    path.write_bytes(b"archive")
    monkeypatch.setenv(spark_conf.SPARK_JAVA_OPTIONS_VARIABLE, "-XX:TieredStopAtLevel=1")
    options = spark_conf.local_spark_conf()["spark.driver.extraJavaOptions"]
    assert options.startswith(f"-XX:SharedArchiveFile={path} ") and options.endswith(" -XX:TieredStopAtLevel=1")
    monkeypatch.setenv(spark_conf.CLASS_ARCHIVE_VARIABLE, "off")
    assert spark_conf.local_spark_conf()["spark.driver.extraJavaOptions"] == "-XX:TieredStopAtLevel=1"


def test_a_path_with_a_space_is_one_quoted_option(archive_at):
    path = archive_at(folder="my venv")
    path.parent.mkdir()
    path.write_bytes(b"archive")
    assert spark_conf.class_archive_options()[0] == f'"-XX:SharedArchiveFile={path}"'


def _writer(exit_code: int, content: bytes):
    """A stand-in training run: writes ``content`` where the JVM would write the archive, exits."""

    def command(partial):
        code = f"open({str(partial)!r}, 'wb').write({content!r}); raise SystemExit({exit_code})"
        return [sys.executable, "-c", code], None

    return command


def test_a_successful_training_puts_the_archive_in_place_and_a_second_build_keeps_it(tmp_path):
    path = tmp_path / "share" / "spark-classes-new.jsa"
    older = tmp_path / "share" / "spark-classes-old.jsa"
    older.parent.mkdir()
    older.write_bytes(b"another java's")

    built, message = class_archive.build(path, make_command=_writer(0, b"classes"))

    assert built == path and path.read_bytes() == b"classes" and "built local Spark's class archive" in message
    assert sorted(p.name for p in path.parent.iterdir()) == [".build.lock", path.name]  # no partial, no older
    again, _ = class_archive.build(path, make_command=_writer(1, b"never run"))
    assert again == path and path.read_bytes() == b"classes"


def test_a_failed_training_leaves_no_archive_and_says_why(tmp_path):
    path = tmp_path / "share" / "spark-classes-new.jsa"

    built, message = class_archive.build(path, make_command=_writer(3, b"half an arch"))

    assert built is None
    assert "was not built (training exited 3" in message and "runs without it" in message
    assert sorted(p.name for p in path.parent.iterdir()) == [".build.lock"]  # a JVM never maps a partial one


def test_a_jvm_for_small_inputs_gets_the_c1_jit_only(archive_at):
    archive_at()  # not built: no archive option
    assert "spark.driver.extraJavaOptions" not in spark_conf.local_spark_conf()
    assert spark_conf.local_spark_conf(small_inputs=True)["spark.driver.extraJavaOptions"] == "-XX:TieredStopAtLevel=1"


def test_files_are_small_up_to_the_limit_together(tmp_path, monkeypatch):
    from airline_local import pipeline

    monkeypatch.setattr(pipeline, "SMALL_INPUTS_BYTES", 10)
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_bytes(b"12345")
    second.write_bytes(b"12345")
    assert pipeline.are_small([first, second])
    second.write_bytes(b"123456")
    assert not pipeline.are_small([first, second])
