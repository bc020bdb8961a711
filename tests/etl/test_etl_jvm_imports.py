"""The warm workers' JVM imports (airline_local.glue.spark_worker.HOT_JVM_CLASSES) change only how
fast py4j finds a class, never which: PySpark's own view, with only its star imports, resolves each
simple name to the same class."""

from __future__ import annotations

import inspect
import re

import pyspark.java_gateway
from py4j.java_gateway import java_import

from airline_local.glue.spark_worker import HOT_JVM_CLASSES


def test_each_hot_class_is_the_one_pysparks_imports_resolve_its_name_to(spark):
    gateway = spark.sparkContext._gateway
    pyspark_imports = re.findall(r'java_import\(gateway\.jvm, "([^"]+)"\)', inspect.getsource(pyspark.java_gateway))
    assert "org.apache.spark.sql.*" in pyspark_imports
    view = gateway.new_jvm_view("pyspark-imports-only")
    for name in pyspark_imports:
        java_import(view, name)
    for full_name in HOT_JVM_CLASSES:
        simple = full_name.rsplit(".", 1)[-1]
        assert getattr(view, simple)._fqn == full_name
        assert getattr(spark.sparkContext._jvm, simple)._fqn == full_name  # the session's view, imported
