"""What an operator looks at: one CloudWatch dashboard of the pipeline, and the reject-ratio alarm.

The job's own numbers (rows by outcome, phase durations) come from the embedded metric format
line each run prints (glue_scripts/bookings_metrics.py, whose names this module reads, so the
two cannot drift); the executions and the dead-letter queue from the services' own metrics.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from glue_scripts import bookings_metrics as job_metrics
from stacks.config import PipelineConfig

# Row outcomes on the dashboard, in the order a row meets them (read, then one outcome each).
ROW_OUTCOMES = ("RowsInserted", "RowsUpdated", "RowsUnchanged", "RowsStale", "RowsDuplicate", "RowsQuarantined")
PHASES = tuple(job_metrics.PHASE_METRICS.values())
PERIOD = Duration.minutes(5)
REJECT_RATIO_PERIOD = Duration.days(1)


class Observability(Construct):
    """Dashboard + reject-ratio alarm (the other alarms live with what they watch)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: PipelineConfig,
        state_machines: Mapping[str, sfn.IStateMachine],
        dead_letter_queue: sqs.IQueue,
        crawler_events_dead_letter_queue: sqs.IQueue,
        job_name: str,
        topic: sns.ITopic,
        alarms: Mapping[str, cloudwatch.IAlarm] = {},
    ) -> None:
        super().__init__(scope, construct_id)
        self.job_name = job_name

        self.reject_ratio_alarm = cloudwatch.Alarm(
            self,
            "RejectRatioAlarm",
            metric=self.reject_ratio(REJECT_RATIO_PERIOD),
            threshold=config.max_reject_ratio / 2,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            # No rows read in the day: no ratio, nothing to say.
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=(
                f"Airline booking ingestion: more than {config.max_reject_ratio / 2:g} of the rows read in a day "
                f"were quarantined (half of maxRejectRatio {config.max_reject_ratio:g}, past which a file is refused)"
            ),
        )
        self.reject_ratio_alarm.add_alarm_action(cw_actions.SnsAction(topic))
        # An S3 event the crawler could not consume after its retries: the catalog may miss that
        # object's header until the next full crawl (stacks/storage.py, CRAWL_EVENT_MODE).
        self.crawler_dead_letters_alarm = cloudwatch.Alarm(
            self,
            "CrawlerEventDeadLettersAlarm",
            metric=crawler_events_dead_letter_queue.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(5), statistic="Maximum"),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description="Airline booking ingestion: S3 events the crawler did not consume reached its "
                              "dead-letter queue (their objects' headers may be missing from the catalog)",
        )
        self.crawler_dead_letters_alarm.add_alarm_action(cw_actions.SnsAction(topic))
        every_alarm = {**alarms, "RejectRatio": self.reject_ratio_alarm,
                       "CrawlerEventDeadLetters": self.crawler_dead_letters_alarm}

        self.dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            default_interval=Duration.days(7),
            period_override=cloudwatch.PeriodOverride.AUTO,
        )
        self.dashboard.add_widgets(
            cloudwatch.TextWidget(
                markdown="# Airline booking ingestion\nExecutions of the state machines, the Glue job's rows "
                         "by outcome and phase durations (embedded metric format in its log), the dead-letter queue.",
                width=24, height=2,
            )
        )
        for label, machine in state_machines.items():
            self.dashboard.add_widgets(*self._execution_widgets(label, machine))
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Rows by outcome",
                left=[self.job_metric(name) for name in ROW_OUTCOMES],
                stacked=True, width=12,
            ),
            cloudwatch.GraphWidget(
                title="Reject ratio (quarantined / read)",
                left=[self.reject_ratio(PERIOD)],
                left_annotations=[cloudwatch.HorizontalAnnotation(
                    value=config.max_reject_ratio / 2, label="alarm (maxRejectRatio / 2, over a day)"),
                    cloudwatch.HorizontalAnnotation(value=config.max_reject_ratio, label="maxRejectRatio")],
                left_y_axis=cloudwatch.YAxisProps(min=0, max=1, show_units=False),
                width=12,
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Glue job duration (seconds)",
                left=[self.job_metric(job_metrics.RUN_SECONDS, statistic=s, label=f"run {s}")
                      for s in ("p50", "p90", "Maximum")],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Glue job phases (average seconds)",
                left=[self.job_metric(name, statistic="Average") for name in PHASES],
                stacked=True, width=12,
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Job runs by outcome",
                left=[self.job_metric(job_metrics.RUNS_SUCCEEDED), self.job_metric(job_metrics.RUNS_FAILED)],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Dead-letter queues (events that never started an execution / never reached the crawler)",
                left=[dead_letter_queue.metric_approximate_number_of_messages_visible(
                    period=PERIOD, statistic="Maximum", label="executions"),
                      crawler_events_dead_letter_queue.metric_approximate_number_of_messages_visible(
                    period=PERIOD, statistic="Maximum", label="crawler events")],
                width=8,
            ),
            cloudwatch.AlarmStatusWidget(
                title="Alarms", alarms=list(every_alarm.values()), width=8,
            ),
        )

    def job_metric(self, name: str, *, statistic: str = "Sum", label: str | None = None,
                   period: Duration = PERIOD) -> cloudwatch.Metric:
        """One of the metrics the job emits (bookings_metrics), for this stack's job."""
        if name not in job_metrics.ALL_METRICS:
            raise ValueError(f"the job does not emit {name!r}; it emits {job_metrics.ALL_METRICS}")
        return cloudwatch.Metric(
            namespace=job_metrics.NAMESPACE,
            metric_name=name,
            dimensions_map={job_metrics.DIMENSION: self.job_name},
            statistic=statistic,
            period=period,
            label=label,
        )

    def reject_ratio(self, period: Duration) -> cloudwatch.MathExpression:
        return cloudwatch.MathExpression(
            expression="quarantined / read",
            using_metrics={
                "quarantined": self.job_metric("RowsQuarantined", period=period),
                "read": self.job_metric("RowsRead", period=period),
            },
            label="reject ratio",
            period=period,
        )

    @staticmethod
    def _execution_widgets(label: str, machine: sfn.IStateMachine) -> list[cloudwatch.IWidget]:
        return [
            cloudwatch.GraphWidget(
                title=f"{label}: executions",
                left=[
                    machine.metric_started(period=PERIOD, statistic="Sum", label="started"),
                    machine.metric_succeeded(period=PERIOD, statistic="Sum", label="succeeded"),
                    machine.metric_failed(period=PERIOD, statistic="Sum", label="failed"),
                    machine.metric_timed_out(period=PERIOD, statistic="Sum", label="timed out"),
                    machine.metric_aborted(period=PERIOD, statistic="Sum", label="aborted"),
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title=f"{label}: execution duration (ms)",
                left=[machine.metric_time(period=PERIOD, statistic=s, label=s) for s in ("p50", "p90")],
                width=12,
            ),
        ]
