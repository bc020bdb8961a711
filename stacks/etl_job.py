"""The Glue PySpark job (Glue 5.0) that validates, stages and loads one booking file, and its
least-privilege role."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Duration
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.catalog import _grant_glue_logs
from stacks.nag import acknowledge, arn_of, finding, pseudo
from stacks.config import PipelineConfig
from stacks.migrations import latest_version
from stacks.storage import BACKFILL_PREFIX, QUARANTINE_PREFIX, RAW_PREFIX, RUNS_PREFIX, STAGING_PREFIX

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENTRY_SCRIPT = PROJECT_ROOT / "glue_scripts" / "ingest_bookings.py"
PYTHON_MODULES = tuple(
    PROJECT_ROOT / "glue_scripts" / name
    for name in ("bookings_contract.py", "bookings_transform.py", "bookings_load.py", "bookings_io.py",
                 "bookings_metrics.py")
)
LOAD_SQL = PROJECT_ROOT / "sql" / "load_bookings.sql"
# Glue puts --extra-py-files on the path under their S3 names, and a file asset's name is its hash:
# the modules (and the load SQL, read with pkgutil.get_data) travel in one zip instead, where
# they keep their own names.
BUNDLE = PROJECT_ROOT / "build" / "glue" / "bookings_etl.zip"
UNUSED = "-"  # value of the Redshift arguments that do not apply (the job's contract)


@dataclass(frozen=True)
class WarehouseTarget:
    """Where and as whom the job loads: what the warehouse construct tells the job."""

    database: str
    workgroup_name: str  # '-' in cluster mode
    cluster_id: str  # '-' in serverless mode
    db_user: str  # '-' in serverless mode (IAM identity maps to IAMR:<role name>)
    copy_role_arn: str
    # IAM: the Data API targets (workgroup or cluster ARN) and the credential grants.
    data_api_resource_arns: tuple[str, ...]
    credential_statement: iam.PolicyStatement


def job_default_arguments(
    config: PipelineConfig, data_root_uri: str, target: WarehouseTarget
) -> dict[str, str]:
    """The job's default arguments (docs/architecture.md), Glue's own ones included."""
    return {
        "--data_root_uri": data_root_uri,
        "--redshift_database": target.database,
        "--redshift_workgroup": target.workgroup_name,
        "--redshift_cluster_id": target.cluster_id,
        "--redshift_db_user": target.db_user,
        "--redshift_copy_role_arn": target.copy_role_arn,
        "--max_reject_ratio": str(config.max_reject_ratio),
        # The schema version the load SQL needs: the last migration of sql/migrations/ at synth.
        "--warehouse_schema_version": latest_version(),
        "--additional-python-modules": f"airportsdata=={config.airportsdata_version}",
        "--job-bookmark-option": "job-bookmark-disable",
        # No --enable-glue-datacatalog: the job reads its one file with an explicit schema and
        # never a catalog table; the flag would make Spark's session start with a metastore
        # client that needs glue:GetDatabase on `default` (docs/aws-notes.md).
    }


def build_module_bundle(destination: Path = BUNDLE) -> Path:
    """Zip the job's modules and load SQL, byte-for-byte reproducibly (so the asset hash is stable)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    members = sorted([*PYTHON_MODULES, LOAD_SQL], key=lambda p: p.name)
    with zipfile.ZipFile(destination, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for path in members:
            info = zipfile.ZipInfo(path.name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            bundle.writestr(info, path.read_bytes(), compress_type=zipfile.ZIP_DEFLATED)
    return destination


def missing_script_files() -> list[Path]:
    """Script files the job needs that are not in the working tree (reported, not created)."""
    return [p for p in (ENTRY_SCRIPT, *PYTHON_MODULES, LOAD_SQL) if not p.is_file()]


class EtlJob(Construct):
    """Glue job + role. The role can read raw/bookings/, write staging/ quarantine/ runs/, run
    Data API statements on the one warehouse, and use the data key; nothing else."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: PipelineConfig,
        bucket: s3.IBucket,
        key: kms.IKey,
        security_configuration: glue.ISecurityConfiguration,
        data_root_uri: str,
        target: WarehouseTarget,
    ) -> None:
        super().__init__(scope, construct_id)
        missing = missing_script_files()
        if missing:
            raise FileNotFoundError(
                "The Glue job's files are missing: " + ", ".join(str(p.relative_to(PROJECT_ROOT)) for p in missing)
            )

        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("glue.amazonaws.com"),
            description="Airline booking Glue job: raw/bookings/ in, staging/ quarantine/ runs/ out, Redshift Data API",
        )
        bucket.grant_read(self.role, f"{RAW_PREFIX}*")
        bucket.grant_read(self.role, f"{BACKFILL_PREFIX}*")  # files the backfill runs the job on
        for prefix in (STAGING_PREFIX, QUARANTINE_PREFIX, RUNS_PREFIX):
            bucket.grant_read_write(self.role, f"{prefix}*")
        key.grant_encrypt_decrypt(self.role)
        _grant_glue_logs(self.role, "jobs")
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="GlueMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": "Glue"}},
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="RedshiftDataApiOnTheWarehouse",
                actions=["redshift-data:ExecuteStatement", "redshift-data:BatchExecuteStatement"],
                resources=list(target.data_api_resource_arns),
            )
        )
        # Statement ids are not resources; the condition limits the job to its own statements.
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="RedshiftDataApiOwnStatements",
                # CancelStatement: the job cancels its own batch when the load times out.
                actions=["redshift-data:DescribeStatement", "redshift-data:GetStatementResult",
                         "redshift-data:CancelStatement"],
                resources=["*"],
                conditions={"StringEquals": {"redshift-data:statement-owner-iam-userid": "${aws:userid}"}},
            )
        )
        self.role.add_to_policy(target.credential_statement)

        job_props = dict(
            role=self.role,
            description="Validates, enriches, stages and MERGEs one airline booking file into Redshift",
            glue_version=glue.GlueVersion.V5_0,
            script=glue.Code.from_asset(str(ENTRY_SCRIPT)),
            extra_python_files=[glue.Code.from_asset(str(build_module_bundle()))],
            default_arguments=job_default_arguments(config, data_root_uri, target),
            worker_configuration=glue.WorkerConfiguration(
                worker_type=glue.WorkerType[config.glue_worker_type.replace(".", "_")],
                number_of_workers=config.glue_number_of_workers,
            ),
            security_configuration=security_configuration,
            timeout=Duration.minutes(config.glue_job_timeout_minutes),
            max_concurrent_runs=config.glue_max_concurrent_runs,
            max_retries=0,  # the state machine decides about retries
            enable_metrics=True,
            enable_observability_metrics=True,
            continuous_logging=glue.ContinuousLoggingProps(enabled=True),
        )
        if config.glue_job_run_queuing:
            # A run past max_concurrent_runs waits (WAITING) instead of being refused: an upload
            # during a backfill is never starved. Needs max_retries 0; Flex jobs cannot queue
            # (docs/aws-notes.md, "Job run queuing").
            job_props["job_run_queuing_enabled"] = True
        job_class = glue.PySparkFlexEtlJob if config.glue_flex else glue.PySparkEtlJob
        self.job = job_class(self, "Job", **job_props)

        acknowledge(
            self.role,
            finding("IAM5", f"Resource::{arn_of(bucket)}/{RAW_PREFIX}*", "The job reads the uploaded input file; the key comes with each run."),
            finding("IAM5", f"Resource::{arn_of(bucket)}/{BACKFILL_PREFIX}*", "The job reads the backfilled input file; the key comes with each run."),
            *(
                finding("IAM5", f"Resource::{arn_of(bucket)}/{p}*", f"The job writes its run's files under {p}<execution id>; ids are per run.")
                for p in (STAGING_PREFIX, QUARANTINE_PREFIX, RUNS_PREFIX)
            ),
            finding("IAM5", "Action::s3:GetObject*", "Object reads from grant_read/grant_read_write, scoped to the job's prefixes and the script assets."),
            finding("IAM5", "Action::s3:GetBucket*", "Bucket metadata reads Spark needs, on the pipeline bucket and the asset bucket only."),
            finding("IAM5", "Action::s3:List*", "Spark lists the job's prefixes; on the pipeline bucket and the asset bucket only."),
            finding("IAM5", "Action::s3:DeleteObject*", "Spark's committer deletes its temporary files under staging/ quarantine/ runs/ only."),
            finding("IAM5", "Action::s3:Abort*", "Aborting the job's own multipart uploads under its write prefixes."),
            finding("IAM5", "Action::kms:ReEncrypt*", "Key use of the pipeline's own data key only."),
            finding("IAM5", "Action::kms:GenerateDataKey*", "Key use of the pipeline's own data key only (SSE-KMS writes)."),
            finding("IAM5", "Resource::*", "cloudwatch:PutMetricData has no resource type (limited to the Glue namespace by condition); "
                    "Data API statement ids are not resources (limited to the job's own statements by condition)."),
            finding("IAM5", pseudo(self, "Resource::arn:{partition}:logs:{region}:{account}:log-group:/aws-glue/jobs*"),
                    "Glue writes job logs to log groups it names itself under /aws-glue/jobs."),
            finding("IAM5", pseudo(self, "Resource::arn:{partition}:s3:::cdk-hnb659fds-assets-{account}-{region}/*"),
                    "Read of the job's script and module assets in the CDK bootstrap asset bucket."),
        )
