"""Redshift: a Serverless namespace + workgroup in a VPC of its own (or an existing workgroup or
cluster named in context), the COPY role, and the custom resource that creates the schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsii
from aws_cdk import (
    Annotations, ArnFormat, Aspects, Aws, CfnCondition, CfnOutput, CustomResource, Duration, Fn, IAspect, RemovalPolicy,
    Stack, Token,
)
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_redshiftserverless as redshiftserverless
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import custom_resources as cr
from constructs import Construct

from stacks.nag import LAMBDA_BASIC_EXECUTION, acknowledge, arn_of, finding, rule
from stacks.config import TWO_ZONE_REGIONS, PipelineConfig, check_subnet_az_ids
from stacks.etl_job import UNUSED, WarehouseTarget
from stacks.migrations import load_migrations, split_sql_statements  # noqa: F401 (split_sql_statements: its old home)
from stacks.storage import STAGING_PREFIX

PROJECT_ROOT = Path(__file__).resolve().parent.parent
HANDLER_DIR = Path(__file__).resolve().parent / "schema_handler"
ADMIN_USER = "admin"


class Warehouse(Construct):
    """Creates (or references) the Redshift warehouse and tells the job how to reach it."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: PipelineConfig,
        bucket: s3.IBucket,
        key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        self._key = key
        stack = Stack.of(self)

        # Role Redshift assumes for COPY: read staging/ only.
        self.copy_role = iam.Role(
            self,
            "CopyRole",
            assumed_by=iam.CompositePrincipal(
                iam.ServicePrincipal("redshift.amazonaws.com"),
                iam.ServicePrincipal("redshift-serverless.amazonaws.com"),
            ),
            description="Redshift COPY of the airline booking pipeline: read staging/ only",
        )
        bucket.grant_read(self.copy_role, f"{STAGING_PREFIX}*")
        acknowledge(
            self.copy_role,
            finding("IAM5", f"Resource::{arn_of(bucket)}/{STAGING_PREFIX}*", "COPY reads the Parquet files each run stages under staging/<execution id>/."),
            finding("IAM5", "Action::s3:GetObject*", "Object reads from grant_read, scoped to staging/*."),
            finding("IAM5", "Action::s3:GetBucket*", "Bucket metadata reads COPY needs, on this bucket only."),
            finding("IAM5", "Action::s3:List*", "COPY lists the staging prefix, on this bucket only."),
        )

        mode = config.redshift_mode
        self.vpc: ec2.Vpc | None = None
        self.namespace: redshiftserverless.CfnNamespace | None = None
        self.workgroup: redshiftserverless.CfnWorkgroup | None = None
        if mode == "serverless":
            self._create_serverless(config, key)
            workgroup_arn = self.workgroup.attr_workgroup_workgroup_arn
            self.admin_secret: secretsmanager.ISecret = self._admin_secret
        else:
            self.admin_secret = secretsmanager.Secret.from_secret_complete_arn(
                self, "AdminSecret", config.existing_redshift_admin_secret_arn
            )
            Annotations.of(self).add_warning_v2(
                "airline:AssociateCopyRole",
                "Using an existing Redshift: associate the COPY role (output CopyRoleArn) with its "
                "namespace or cluster, or COPY from staging/ will be refused.",
            )

        if mode == "existing-cluster":
            cluster_arn = stack.format_arn(
                service="redshift", resource="cluster", resource_name=config.existing_redshift_cluster_id,
                arn_format=ArnFormat.COLON_RESOURCE_NAME,
            )
            user = config.existing_redshift_db_user
            self.target = WarehouseTarget(
                database=config.redshift_database,
                workgroup_name=UNUSED,
                cluster_id=config.existing_redshift_cluster_id,
                db_user=user,
                copy_role_arn=self.copy_role.role_arn,
                data_api_resource_arns=(cluster_arn,),
                credential_statement=iam.PolicyStatement(
                    sid="RedshiftClusterCredentials",
                    actions=["redshift:GetClusterCredentials"],
                    resources=[
                        stack.format_arn(service="redshift", resource="dbuser", arn_format=ArnFormat.COLON_RESOURCE_NAME,
                                         resource_name=f"{config.existing_redshift_cluster_id}/{user}"),
                        stack.format_arn(service="redshift", resource="dbname", arn_format=ArnFormat.COLON_RESOURCE_NAME,
                                         resource_name=f"{config.existing_redshift_cluster_id}/{config.redshift_database}"),
                    ],
                ),
            )
        else:
            if mode == "existing-serverless":
                workgroup_arn = stack.format_arn(
                    service="redshift-serverless", resource="workgroup",
                    resource_name=config.existing_redshift_workgroup_id,
                )
            self.target = WarehouseTarget(
                database=config.redshift_database,
                workgroup_name=config.workgroup_name,
                cluster_id=UNUSED,
                db_user=UNUSED,
                copy_role_arn=self.copy_role.role_arn,
                data_api_resource_arns=(workgroup_arn,),
                credential_statement=iam.PolicyStatement(
                    sid="RedshiftServerlessCredentials",
                    actions=["redshift-serverless:GetCredentials"],
                    resources=[workgroup_arn],
                ),
            )
        CfnOutput(self, "CopyRoleArn", value=self.copy_role.role_arn, description="Role Redshift assumes for COPY")
        CfnOutput(self, "WorkgroupName", value=self.target.workgroup_name, description="Redshift Serverless workgroup ('-' for a cluster)")

    # -- Serverless (default) -------------------------------------------------------------------
    def _create_serverless(self, config: PipelineConfig, key: kms.IKey) -> None:
        removal = config.data_removal_policy
        flow_log_group = logs.LogGroup(
            self, "FlowLogs", encryption_key=key, retention=log_retention(config), removal_policy=removal
        )
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(config.redshift_vpc_cidr),
            # Placeholders by position, never a context lookup: synth stays offline and the
            # same in every account (the subnets' real zones are set by _place_subnets).
            availability_zones=[Fn.select(i, Fn.get_azs()) for i in range(3)],
            nat_gateways=0,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="warehouse", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24)
            ],
            # COPY with enhanced VPC routing reaches S3 through this endpoint, not the internet.
            gateway_endpoints={"S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3)},
            flow_logs={
                "all": ec2.FlowLogOptions(
                    destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_log_group),
                    traffic_type=ec2.FlowLogTrafficType.ALL,
                )
            },
            restrict_default_security_group=True,
        )
        _place_subnets(self.vpc, config.redshift_subnet_az_ids)
        self.security_group = ec2.SecurityGroup(
            self,
            "WorkgroupSecurityGroup",
            vpc=self.vpc,
            description="Redshift Serverless workgroup: no inbound (the pipeline uses the Data API)",
            allow_all_outbound=False,
        )
        # Isolated subnets route nowhere but to the S3 gateway endpoint, so HTTPS egress can only
        # reach S3 (COPY from staging/ under enhanced VPC routing).
        self.security_group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "COPY from S3 via the gateway endpoint")

        # Admin credentials: generated into Secrets Manager, handed to Redshift as a dynamic
        # reference, so the password never appears in the template.
        self._admin_secret = secretsmanager.Secret(
            self,
            "AdminSecret",
            description="Redshift Serverless admin user of the airline booking warehouse",
            encryption_key=key,
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template=json.dumps({"username": ADMIN_USER}),
                generate_string_key="password",
                exclude_characters="\"'\\/@ `",
                password_length=32,
                require_each_included_type=True,
            ),
            removal_policy=removal,
        )
        acknowledge(
            self._admin_secret,
            rule("SMG4", "Used only by the deploy-time schema resource; rotating a Redshift admin secret needs a "
                 "rotation function with a network path into the isolated VPC, which this stack does not run."),
        )
        self.namespace = redshiftserverless.CfnNamespace(
            self,
            "Namespace",
            namespace_name=config.redshift_namespace_name,
            db_name=config.redshift_database,
            admin_username=ADMIN_USER,
            admin_user_password=self._admin_secret.secret_value_from_json("password").unsafe_unwrap(),
            kms_key_id=key.key_arn,
            iam_roles=[self.copy_role.role_arn],
            default_iam_role_arn=self.copy_role.role_arn,
            log_exports=["userlog", "connectionlog", "useractivitylog"],
        )
        self.namespace.apply_removal_policy(removal)
        self.workgroup = redshiftserverless.CfnWorkgroup(
            self,
            "Workgroup",
            workgroup_name=config.redshift_workgroup_name,
            namespace_name=self.namespace.ref,
            base_capacity=config.redshift_base_capacity,
            publicly_accessible=False,
            enhanced_vpc_routing=True,
            subnet_ids=self.vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED).subnet_ids,
            security_group_ids=[self.security_group.security_group_id],
            config_parameters=[
                redshiftserverless.CfnWorkgroup.ConfigParameterProperty(parameter_key="require_ssl", parameter_value="true"),
                redshiftserverless.CfnWorkgroup.ConfigParameterProperty(
                    parameter_key="enable_user_activity_logging", parameter_value="true"
                ),
            ],
        )
        # Compute only (the data is the namespace's): always deleted with the stack. A kept
        # workgroup would hold its network interfaces in subnets the stack deletes, and the delete
        # would fail.
        self.workgroup.apply_removal_policy(RemovalPolicy.DESTROY)

    # -- Schema custom resource ---------------------------------------------------------------
    def add_schema(self, *, etl_role: iam.IRole) -> CustomResource:
        """The deploy-time resource that applies the pending migrations of sql/migrations/ (each in
        its own transaction, recorded in airline.schema_migrations) plus the grants to the job."""
        config, stack = self._config, Stack.of(self)
        db_user = (
            config.existing_redshift_db_user
            if config.redshift_mode == "existing-cluster"
            else Fn.join("", ["IAMR:", etl_role.role_name])
        )
        log_group = logs.LogGroup(self, "SchemaHandlerLogs", encryption_key=self._key, retention=log_retention(config),
                                  removal_policy=RemovalPolicy.DESTROY)
        common = dict(
            runtime=lambda_.Runtime.PYTHON_3_14,
            code=lambda_.Code.from_asset(str(HANDLER_DIR), exclude=["__pycache__", "*.pyc"]),
            # Each isComplete call waits for the batches it runs, up to 10 s before this timeout
            # (then answers "not complete" and the next call goes on).
            timeout=Duration.minutes(5),
            log_group=log_group,
            description="Applies the airline warehouse's migrations with the Redshift Data API",
        )
        # ONE function for both Provider handlers: the Data API lets only the identity that ran a
        # statement describe it, and a function's identity is its role with the function's name
        # as session name, so a second function could never see the batch (docs/aws-notes.md).
        handler = lambda_.Function(self, "SchemaHandler", handler="handler.handle", **common)
        self.admin_secret.grant_read(handler)
        handler.add_to_role_policy(
            iam.PolicyStatement(
                sid="RunSchemaBatch",
                actions=["redshift-data:BatchExecuteStatement"],
                resources=list(self.target.data_api_resource_arns),
            )
        )
        handler.add_to_role_policy(
            iam.PolicyStatement(
                sid="DescribeOwnStatements",
                # GetStatementResult: the migrations recorded and the tables found, read by isComplete.
                actions=["redshift-data:DescribeStatement", "redshift-data:GetStatementResult"],
                resources=["*"],
                conditions={"StringEquals": {"redshift-data:statement-owner-iam-userid": "${aws:userid}"}},
            )
        )

        waiter_logs = logs.LogGroup(self, "SchemaWaiterLogs", encryption_key=self._key, retention=log_retention(config),
                                    removal_policy=RemovalPolicy.DESTROY)
        framework_logs = logs.LogGroup(self, "SchemaProviderLogs", encryption_key=self._key,
                                       retention=log_retention(config), removal_policy=RemovalPolicy.DESTROY)
        provider = cr.Provider(
            self,
            "SchemaProvider",
            on_event_handler=handler,
            is_complete_handler=handler,
            query_interval=Duration.seconds(10),
            total_timeout=Duration.minutes(30),
            disable_waiter_state_machine_logging=False,
            waiter_state_machine_log_options=cr.LogOptions(destination=waiter_logs, level=sfn.LogLevel.ALL),
            log_group=framework_logs,
        )
        migrations = load_migrations()
        resource = CustomResource(
            self,
            "Schema",
            service_token=provider.service_token,
            resource_type="Custom::RedshiftSchema",
            properties={
                "Database": config.redshift_database,
                "SecretArn": self.admin_secret.secret_arn,
                **(
                    {"ClusterIdentifier": config.existing_redshift_cluster_id}
                    if config.redshift_mode == "existing-cluster"
                    else {"WorkgroupName": config.workgroup_name}
                ),
                # Every migration with its checksum: a new one (or a changed one, which the handler
                # refuses) changes the properties, so CloudFormation calls Update and it is applied.
                "Migrations": [m.as_property() for m in migrations],
                "EtlDbUser": db_user,
            },
        )
        if self.workgroup is not None:
            resource.node.add_dependency(self.workgroup)
        _scope_waiter_log_writes(provider, waiter_logs)
        _acknowledge_provider(provider, handler)
        return resource


def _place_subnets(vpc: ec2.Vpc, az_ids: tuple[str, ...]) -> None:
    """Puts the workgroup's three subnets where Redshift Serverless accepts them.

    With enhanced VPC routing a workgroup needs three subnets in three Availability Zones; in
    us-west-1, which has two, three subnets over two zones (docs/aws-notes.md, "Redshift
    Serverless subnets"). Configured AZ IDs (context redshiftSubnetAzIds) are used as given:
    AWS lists supported zones by ID, and a name maps to a different ID in every account.
    Otherwise the region's zones by position: the first three, or the first two and the first
    again in a two-zone region (decided at deploy time when the stack has no region)."""
    stack = Stack.of(vpc)
    subnets = [s.node.default_child for s in vpc.isolated_subnets]
    if az_ids:
        check_subnet_az_ids(az_ids, None if Token.is_unresolved(stack.region) else stack.region)
        for subnet, az_id in zip(subnets, az_ids, strict=True):
            # ec2.Vpc only takes zone names: swap the name for the ID on the subnet itself.
            subnet.add_property_deletion_override("AvailabilityZone")
            subnet.add_property_override("AvailabilityZoneId", az_id)
        return
    third = Fn.select(2, Fn.get_azs())
    if not Token.is_unresolved(stack.region):
        if stack.region in TWO_ZONE_REGIONS:
            subnets[2].availability_zone = Fn.select(0, Fn.get_azs())
        return
    two_zones = CfnCondition(
        stack, "RedshiftRegionHasTwoZones",
        expression=Fn.condition_or(*(Fn.condition_equals(Aws.REGION, r) for r in TWO_ZONE_REGIONS))
        if len(TWO_ZONE_REGIONS) > 1 else Fn.condition_equals(Aws.REGION, TWO_ZONE_REGIONS[0]),
    )
    subnets[2].availability_zone = Fn.condition_if(two_zones.logical_id, Fn.select(0, Fn.get_azs()), third).to_string()


# CloudWatch Logs accepts only these retention periods (days), in RetentionDays order.
_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)


def log_retention(config: PipelineConfig) -> logs.RetentionDays:
    """The shortest CloudWatch retention that keeps logs at least the configured days."""
    members = [m for m in logs.RetentionDays if m.name != "INFINITE"]
    for days, member in zip(_RETENTION_DAYS, members):
        if days >= config.log_retention_days:
            return member
    return logs.RetentionDays.TEN_YEARS


_LOG_WRITE_ACTIONS = ("logs:CreateLogStream", "logs:PutLogEvents")


@jsii.implements(IAspect)
class _ScopeLogWrites:
    """Moves the log-write actions of an Allow statement on "*" to a statement on one log group.

    Runs as an aspect (after every construct has added its statements) on one CfnPolicy."""

    def __init__(self, log_group_arn: str) -> None:
        self._log_group_arn = log_group_arn

    def visit(self, node) -> None:
        stack = Stack.of(node)
        document = stack.resolve(node.policy_document)
        statements = []
        for statement in document["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            moved = sorted(a for a in actions if a in _LOG_WRITE_ACTIONS)
            if not moved or statement.get("Resource") != "*" or statement["Effect"] != "Allow":
                statements.append(statement)
                continue
            rest = [a for a in actions if a not in moved]
            if rest:
                statements.append({**statement, "Action": rest})
            statements.append({"Action": moved, "Effect": "Allow", "Resource": stack.resolve(self._log_group_arn)})
        node.policy_document = {**document, "Statement": statements}


def _scope_waiter_log_writes(provider: cr.Provider, log_group: logs.ILogGroup) -> None:
    """CDK grants the Provider's waiter state machine role logs:CreateLogStream/PutLogEvents on "*"
    next to the log-delivery actions. Step Functions writes execution logs through a CloudWatch Logs
    delivery, not as the role, and both actions take a log-group resource: keep them, on the waiter's
    own log group only."""
    role = provider.node.find_child("waiter-state-machine").node.find_child("Role")
    Aspects.of(role.node.find_child("DefaultPolicy").node.default_child).add(_ScopeLogWrites(log_group.log_group_arn))


def _acknowledge_provider(provider: cr.Provider, handler: lambda_.Function) -> None:
    """The Provider framework's own functions, roles and waiter are generated by CDK."""
    basic = finding("IAM4", LAMBDA_BASIC_EXECUTION, "The managed policy only lets the function write its own CloudWatch logs.")
    acknowledge(
        handler,
        basic,
        finding("IAM5", "Resource::*", "DescribeStatement has no resource type; the condition limits it to the "
                "function's own statements."),
    )
    framework_invoke = [
        finding("IAM5", f"Resource::{arn_of(handler)}:*", "The framework invokes any version of the schema handler it wraps.")
    ]
    for name in ("framework-onEvent", "framework-isComplete", "framework-onTimeout"):
        acknowledge(
            provider.node.find_child(name),
            basic,
            *framework_invoke,
            rule("L1", "Runtime chosen by the CDK Provider framework, updated with aws-cdk-lib."),
        )
    waiter = provider.node.find_child("waiter-state-machine")
    acknowledge(
        waiter,
        *(
            finding("IAM5", f"Resource::{arn_of(provider.node.find_child(name))}:*",
                    "The waiter invokes any version of the framework function it drives.")
            for name in ("framework-isComplete", "framework-onTimeout")
        ),
        finding("IAM5", "Resource::*", "CloudWatch Logs delivery actions of the waiter's logging have no resource type."),
        rule("SF2", "The CDK Provider framework's waiter state machine has no X-Ray tracing option; it only polls "
             "the schema handler during deployments."),
    )
