"""bench.jfr_profile: task-thread samples sorted into the job's parts and the work at their leaf."""

from __future__ import annotations

from bench import jfr_profile


def sample(thread: str, *frames: str) -> dict:
    """A jdk.ExecutionSample as `jfr print --json` gives it; ``frames`` leaf first."""
    def frame(name: str) -> dict:
        type_name, method = name.rsplit(".", 1)
        return {"method": {"type": {"name": type_name}, "name": method}}
    return {"values": {"sampledThread": {"javaName": thread},
                       "stackTrace": {"frames": [frame(f) for f in frames]}}}


CACHE = "org/apache/spark/sql/execution/columnar/CachedRDDBuilder$$anon$2.next"
STAGE = "org/apache/spark/sql/catalyst/expressions/GeneratedClass$GeneratedIteratorForCodegenStage4.processNext"
TASK = "Executor task launch worker-0"


def test_samples_are_sorted_by_part_and_by_the_work_at_their_leaf():
    samples = [
        # the zone id lookup called from the validation's generated code
        sample(TASK, "java/util/regex/Pattern.compile", "java/lang/String.replaceFirst",
               "org/apache/spark/sql/catalyst/util/SparkDateTimeUtils.getZoneId", STAGE, CACHE),
        # the generated code itself, under the cache builder
        sample(TASK, STAGE, CACHE),
        sample(TASK, STAGE, CACHE),
        # the cache's own encoding: columnar frames at the leaf, the generated code further up
        sample(TASK, "org/apache/spark/sql/execution/columnar/compression/RunLengthEncoding$Encoder.gatherCompressibilityStats",
               CACHE, STAGE),
        # another stage: Parquet writing
        sample("Executor task launch worker-1", "org/apache/parquet/column/impl/ColumnWriterBase.write", STAGE),
        sample("Thread-3", "org/apache/spark/sql/Dataset.collect"),  # the driver: not counted
    ]
    assert jfr_profile.profile(samples) == {
        jfr_profile.VALIDATION: {jfr_profile.GENERATED_CODE: 2,
                                 "to_utc_timestamp's zone id lookup (two regex compiles a row)": 1,
                                 "in-memory cache: column encoding": 1},
        jfr_profile.REST: {"Parquet writing": 1},
    }


def test_the_printed_profile_gives_shares_of_each_part():
    text = jfr_profile.format_profile({jfr_profile.VALIDATION: {"a": 3, "b": 1}, jfr_profile.REST: {"c": 4}})
    assert "validation (with the cache it fills): 4 samples, 50 % of the task threads'" in text
    assert "   75.0 %  a" in text and "  100.0 %  c" in text
