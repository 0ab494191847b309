"""The `trailscan` command: parse flags, call one library function, format the result.

Exit codes: 0 success (quarantined input is reported, not fatal); 1 failure; 2 usage error.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click
import orjson

from . import __version__
from .errors import TrailscanError
from .output import FORMATS, emit, terminal_line, terminal_safe

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def _stderr() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def lake_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--lake", envvar="TRAILSCAN_LAKE", default=None,
                        help="Lake directory or s3://bucket/prefix [default: $TRAILSCAN_LAKE or "
                        "./trailscan-lake].")(func)


def lake_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--lake plus --profile/--aws-region/--endpoint-url to reach an s3:// lake; the command
    receives `lake` as a directory or an S3LakeRef (the location with its AWS options)."""

    @functools.wraps(func)
    def wrapper(*args: Any, lake: str | None, aws: Any, **kwargs: Any) -> Any:
        from .lake_s3 import lake_ref

        return func(*args, lake=lake_ref(lake, aws), **kwargs)

    return lake_option(aws_options(wrapper))


def output_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--format/--output for every command that prints rows."""
    func = click.option("--output", "-o", default=None,
                        help="Write to FILE instead of stdout.")(func)
    return click.option("--format", "fmt", type=click.Choice(FORMATS), default="table",
                        show_default=True, help="Output format.")(func)


def filter_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed([
        click.option("--since", help="Only events at or after this date/time (ISO-8601)."),
        click.option("--until", help="Only events at or before this date/time (ISO-8601)."),
        click.option("--account", "accounts", multiple=True, help="Only this account id."),
        click.option("--region", "regions", multiple=True, help="Only this region."),
    ]):
        func = option(func)
    return func


def aws_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--profile/--aws-region/--endpoint-url for S3 and AWS sources, passed on as `aws`.

    (`--region` already filters by the events' region, hence `--aws-region` for the client.)"""

    @functools.wraps(func)
    def wrapper(*args: Any, profile: str | None, aws_region: str | None,
                endpoint_url: str | None, **kwargs: Any) -> Any:
        from .s3 import AwsOptions

        return func(*args, aws=AwsOptions(profile, aws_region, endpoint_url), **kwargs)

    for option in reversed([
        click.option("--profile", default=None,
                     help="AWS profile for s3:// and aws-event-history:// sources and "
                          "s3:// lakes."),
        click.option("--aws-region", default=None,
                     help="AWS region of the S3/CloudTrail clients [default: boto3's]."),
        click.option("--endpoint-url", default=None,
                     help="S3 endpoint (S3-compatible stores, local test servers)."),
    ]):
        wrapper = option(wrapper)
    return wrapper


def _filters(since: str | None, until: str | None, accounts: tuple[str, ...],
             regions: tuple[str, ...]) -> Any:
    from .sources import Filters, parse_time

    return Filters(since=parse_time(since) if since is not None else None,
                   until=parse_time(until, end=True) if until is not None else None,
                   accounts=frozenset(accounts), regions=frozenset(regions))


def _stdout_gone() -> bool:
    """True when the reader of stdout has gone (a pipe whose other end is closed)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), 0)
        return any(event & (select.POLLERR | select.POLLHUP) for _, event in poller.poll(0))
    except (OSError, ValueError):
        return False


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Library errors become `Error: <message>` and their exit code, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except TrailscanError as exc:
            click.echo(f"Error: {terminal_line(str(exc))}", err=True)
            sys.exit(exc.exit_code)
        except BrokenPipeError:
            if _stdout_gone():  # `trailscan query ... | head`: click ends quietly (exit 1)
                raise
            click.echo("Error: broken pipe", err=True)
            sys.exit(EXIT_FAILURE)
        except OSError as exc:  # the system refused (disk full, permissions): one line, exit 1
            click.echo(f"Error: {terminal_line(str(exc))}", err=True)
            sys.exit(EXIT_FAILURE)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)

    return wrapper


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Callable[[str, int, int | None], None]]:
    """Draw the library's progress callbacks as a rich bar on stderr."""
    if not enabled or not sys.stderr.isatty():
        yield lambda stage, done, total: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=_stderr(), transient=True) as bar:
        tasks: dict[str, Any] = {}

        def update(stage: str, done: int, total: int | None) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield update


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="trailscan")
def cli() -> None:
    """trailscan: CloudTrail logs to a Parquet lake; integrity, detections, investigations."""


def _ingest_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = filter_options(func)
    func = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")(func)
    func = click.option("--max-file-bytes", type=click.IntRange(min=1), default=None,
                        help="Quarantine objects larger than this once decompressed "
                             "[default: 512 MiB].")(func)
    func = click.option("--workers", type=click.IntRange(min=1), default=None,
                        help="Parser processes [default: CPU count].")(func)
    func = click.option("--force", is_flag=True,
                        help="Re-read objects already in the manifest.")(func)
    func = click.option("--public-keys", type=click.Path(dir_okay=False), default=None,
                        help="CloudTrail public keys (JSON of `aws cloudtrail list-public-keys`)."
                        )(func)
    return aws_options(lake_option(func))


def _run_ingest(sources: tuple[str, ...], lake: str | None, since: str | None,
                until: str | None, accounts: tuple[str, ...], regions: tuple[str, ...],
                max_file_bytes: int | None, workers: int | None, force: bool,
                public_keys: str | None, quiet: bool, validate: bool | None, aws: Any) -> Any:
    from .ingest import ingest
    from .records import DEFAULT_MAX_BYTES

    with progress_bar(not quiet) as progress:
        return ingest(sources, lake, filters=_filters(since, until, accounts, regions),
                      limit=max_file_bytes or DEFAULT_MAX_BYTES, workers=workers, force=force,
                      progress=progress, validate=validate, public_keys=public_keys, aws=aws)


def _print_ingest(stats: Any) -> None:
    for problem in stats.problems[:20]:
        label = "failed" if "download failed" in problem else "quarantined"
        click.echo(f"{label}: {terminal_line(problem)}", err=True)
    if len(stats.problems) > 20:
        click.echo(f"... and {len(stats.problems) - 20} more (see `trailscan quarantine`)",
                   err=True)
    click.echo(
        f"{stats.files_seen} files seen: {stats.files_ingested} ingested, "
        f"{stats.files_skipped} skipped, {stats.files_quarantined} quarantined, "
        f"{stats.files_digest} digest/signature files"
        f"{f', {stats.files_failed} FAILED to download' if stats.files_failed else ''}\n"
        f"{stats.events_read} events read: {stats.events_written} written, "
        f"{stats.events_duplicate} duplicates, {stats.events_quarantined} quarantined, "
        f"{stats.events_filtered} filtered out; {stats.conflicting_event_ids} conflicting "
        f"event ids\nlake {stats.lake} ({stats.seconds:.1f}s)")
    for report in stats.integrity:
        digests, logs = report["digests"], report["log_files"]
        click.echo(f"integrity of {report['source']}: {'VALID' if report['valid'] else 'INVALID'}"
                   f" - digests {digests['valid']} valid, {digests['invalid']} invalid, "
                   f"{digests['unverifiable']} unverifiable; log files {logs['valid']} valid, "
                   f"{logs['invalid']} invalid, {logs['missing']} missing, {logs['unlisted']} "
                   f"unlisted; {len(report['problems'])} problems, {len(report['gaps'])} gaps")


@cli.command()
@click.argument("sources", nargs=-1, required=True)
@_ingest_options
@click.option("--validate", is_flag=True,
              help="Also validate digest chains; rows carry the verdict of their file.")
@handle_errors
def ingest(sources: tuple[str, ...], lake: str | None, as_json: bool, validate: bool,
           **options: Any) -> None:
    """Read CloudTrail files (or directories, recursively), s3://bucket[/prefix] or
    aws-event-history://<region> into the lake."""
    stats = _run_ingest(sources, lake, quiet=as_json, validate=validate, **options)
    if as_json:
        click.echo(orjson.dumps(stats.as_dict()).decode())
    else:
        _print_ingest(stats)
    sys.exit(EXIT_FAILURE if stats.files_failed else EXIT_OK)  # retried by the next run


@cli.command()
@click.argument("sources", nargs=-1, required=True)
@_ingest_options
@handle_errors
def scan(sources: tuple[str, ...], lake: str | None, as_json: bool, **options: Any) -> None:
    """Ingest (+ validate when digests are present), run every detection, summarise."""
    from .detections import SEVERITIES, load_rules, run_rules
    from .lake_s3 import lake_ref
    from .summary import summarize

    stats = _run_ingest(sources, lake, quiet=as_json, validate=None, **options)
    target: Any = lake_ref(stats.lake, options["aws"])  # an s3:// lake keeps its AWS options
    findings = run_rules(target, load_rules(), store=True)
    by_severity = {s: 0 for s in reversed(SEVERITIES)}
    for severity in findings.column("severity").to_pylist():
        by_severity[severity] += 1
    summary = summarize(target)
    if as_json:
        click.echo(orjson.dumps({"ingest": stats.as_dict(), "summary": summary,
                                 "findings_by_severity": by_severity,
                                 "findings": findings.to_pylist()}).decode())
        return
    _print_ingest(stats)
    click.echo(f"\n{summary['events']} events in the lake, {summary['first_event']} .. "
               f"{summary['last_event']}; {summary['accounts']} accounts, {summary['regions']} "
               f"regions, {summary['principals']} principals, {summary['errors']} errors, "
               f"{summary['quarantined']} quarantined records/files")
    click.echo("\nFindings by severity: " + ", ".join(f"{n} {s}" for s, n in by_severity.items())
               + " (details: trailscan detect, or SELECT * FROM findings)")
    rows = sorted(findings.to_pylist(), key=lambda r: -SEVERITIES.index(r["severity"]))
    for row in rows:
        if SEVERITIES.index(row["severity"]) >= SEVERITIES.index("medium"):
            click.echo(f"  [{row['severity']}] {row['rule_id']}: "
                       f"{terminal_line(row['summary'])}")
    for title, key in (("Top APIs", "top_event_names"), ("Top principals", "top_principals"),
                       ("Top errors", "top_errors")):
        click.echo(f"\n{title}:")
        for item in summary[key]:
            click.echo(f"  {item['events']:>8}  {terminal_line(str(item['name']))}")


@cli.command()
@click.argument("source")
@click.option("--public-keys", type=click.Path(dir_okay=False), default=None,
              help="Public keys (JSON of `aws cloudtrail list-public-keys`) [default: "
                   "SOURCE/public-keys.json, else fetched from AWS and cached in the lake].")
@filter_options
@click.option("--bucket", default=None,
              help="The bucket the trail delivers to: every digest must claim it "
                   "[default: the bucket most digests of the copy claim].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--verbose", "-v", is_flag=True, help="One line per digest and log file.")
@click.option("--lake", envvar="TRAILSCAN_LAKE", default=None,
              help="Lake (directory or s3://bucket/prefix) whose key cache to use, and where "
                   "verdicts are recorded if it exists.")
@aws_options
@handle_errors
def validate(source: str, public_keys: str | None, since: str | None, until: str | None,
             accounts: tuple[str, ...], regions: tuple[str, ...], bucket: str | None,
             as_json: bool, verbose: bool, lake: str | None, aws: Any) -> None:
    """Validate CloudTrail digest chains, signatures and log-file hashes (exit 1 if invalid)."""
    from .integrity import format_text
    from .lake import Lake
    from .validation import record, validate_source

    existing = Lake.existing(lake, aws=aws)
    report = validate_source(source, public_keys=public_keys, lake=existing,
                             filters=_filters(since, until, accounts, regions), aws=aws,
                             bucket=bucket)
    if existing is not None:
        with existing.recording():
            record(existing, source, report)
    if as_json:
        click.echo(orjson.dumps(report.to_json()).decode())
    else:
        click.echo(terminal_safe(format_text(report, verbose)))  # keys are names from disk
    sys.exit(EXIT_OK if report.valid else EXIT_FAILURE)


@cli.command()
@click.argument("source")
@click.argument("target", type=click.Path(file_okay=False))
@filter_options
@click.option("--dry-run", is_flag=True,
              help="Only list: print how many objects and bytes would be fetched.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@aws_options
@handle_errors
def sync(source: str, target: str, since: str | None, until: str | None,
         accounts: tuple[str, ...], regions: tuple[str, ...], dry_run: bool, as_json: bool,
         aws: Any) -> None:
    """Mirror trail objects (logs, digests + signature sidecars, insights) from S3 to TARGET."""
    from .sync import sync as run_sync

    with progress_bar(not as_json) as progress:
        stats = run_sync(source, target, filters=_filters(since, until, accounts, regions),
                         aws=aws, dry_run=dry_run, progress=progress)
    if as_json:
        click.echo(orjson.dumps(stats.as_dict()).decode())
    else:
        for problem in stats.problems[:20]:
            click.echo(problem, err=True)
        mib = stats.bytes_to_fetch / 2**20
        if dry_run:
            click.echo(f"would fetch {stats.objects_to_fetch} objects, {stats.bytes_to_fetch} "
                       f"bytes ({mib:.1f} MiB); {stats.objects_present} already present, "
                       f"{stats.skipped_unsafe} unsafe keys skipped ({stats.list_calls} list "
                       "requests)")
        else:
            click.echo(f"fetched {stats.objects_fetched} objects, {stats.bytes_fetched} bytes "
                       f"({stats.sidecars_written} digest signature sidecars); "
                       f"{stats.objects_present} already present, {stats.skipped_unsafe} unsafe "
                       f"keys skipped, {stats.failed} failed -> {stats.target}")
    sys.exit(EXIT_FAILURE if stats.failed else EXIT_OK)


@cli.command()
@click.argument("sql")
@lake_options
@output_options
@click.option("--dialect", type=click.Choice(("duckdb", "athena")), default="duckdb",
              show_default=True,
              help="SQL dialect: athena reads queries written for AWS's Athena CloudTrail table "
                   "(table cloudtrail_logs).")
@handle_errors
def query(sql: str, lake: str | None, fmt: str, output: str | None, dialect: str) -> None:
    """Run SQL over the views `cloudtrail`, `cloudtrail_logs`, `quarantine`, `manifest`."""
    from .query import run_query

    emit(run_query(sql, lake, dialect), fmt, output)


@cli.command()
@lake_options
@click.option("--dialect", type=click.Choice(("duckdb", "athena")), default="duckdb",
              show_default=True, help="SQL dialect to start with (.dialect switches).")
@handle_errors
def shell(lake: str | None, dialect: str) -> None:
    """Interactive SQL prompt with the lake's views loaded (.help inside)."""
    from .shell import run_shell

    sys.exit(run_shell(lake, sys.stdin, sys.stdout.buffer, dialect=dialect,
                       interactive=sys.stdin.isatty()))


@cli.command()
@lake_options
@click.option("--principal", help="An IAM user, role or assumed-role session ARN.")
@click.option("--access-key", help="An access key id (AKIA... or ASIA...).")
@click.option("--ip", help="A source IP address.")
@click.option("--event-id", help="One event (and the session that made it).")
@click.option("--since", help="Only events at or after this date/time (ISO-8601).")
@click.option("--until", help="Only events at or before this date/time (ISO-8601).")
@click.option("--format", "fmt", type=click.Choice(("table", "json", "csv")), default="table",
              show_default=True, help="table: sections; json: one object; csv: the timeline.")
@click.option("--output", "-o", default=None, help="Write to FILE instead of stdout.")
@handle_errors
def investigate(lake: str | None, principal: str | None, access_key: str | None,
                ip: str | None, event_id: str | None, since: str | None, until: str | None,
                fmt: str, output: str | None) -> None:
    """Timeline, summary, findings and who is behind each session, for one entity."""
    from .investigate import investigate as run
    from .investigate import write_to
    from .sources import parse_time

    found = run(lake, principal=principal, access_key=access_key, ip=ip, event_id=event_id,
                since=parse_time(since) if since is not None else None,
                until=parse_time(until, end=True) if until is not None else None)
    write_to(found, fmt, output)


@cli.command()
@lake_options
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False),
              help="The HTML file to write (self-contained, works offline).")
@handle_errors
def report(lake: str | None, output: str) -> None:
    """One self-contained HTML report: integrity, findings, activity, top lists."""
    from .report import build_report

    click.echo(f"wrote {build_report(lake, output)}", err=True)


@cli.command()
@lake_options
@output_options
@handle_errors
def quarantine(lake: str | None, fmt: str, output: str | None) -> None:
    """List quarantined files and records with their reasons."""
    from .query import run_query

    emit(run_query("SELECT run_id, source, record_index, reason, copy FROM quarantine "
                   "ORDER BY run_id, source, record_index", lake), fmt, output)


@cli.command("athena-ddl")
@click.option("--lake", envvar="TRAILSCAN_LAKE", default=None,
              help="The lake: s3://bucket/prefix or a directory [default: $TRAILSCAN_LAKE or "
                   "./trailscan-lake]. Only its location is used; it need not exist here.")
@click.option("--database", default=None, help="Database (schema) to create the table in.")
@click.option("--table", default="cloudtrail", show_default=True, help="Table name.")
@click.option("--dialect", type=click.Choice(("all", "athena", "trino", "spark")), default="all",
              show_default=True, help="Which engine's statements to print.")
@handle_errors
def athena_ddl(lake: str | None, database: str | None, table: str, dialect: str) -> None:
    """Print CREATE TABLE statements that make the lake queryable in Athena, Trino and Spark."""
    from .ddl import all_ddl, table_ddl
    from .lake import resolve_path

    location = lake if lake and "://" in lake else str(resolve_path(lake))
    click.echo(all_ddl(location, database, table) if dialect == "all"
               else table_ddl(location, dialect, database, table), nl=False)


# --- detections ------------------------------------------------------------------------------

_SEVERITY_CHOICE = click.Choice(("info", "low", "medium", "high", "critical"))


def rules_dir_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--rules-dir", type=click.Path(file_okay=False), default=None,
                        help="Rules directory [default: the bundled queries/].")(func)


@cli.command()
@lake_options
@rules_dir_option
@click.option("--rule", "rule_ids", multiple=True, help="Only this rule id (repeatable).")
@click.option("--tag", "tags", multiple=True, help="Only rules with this tag (repeatable).")
@click.option("--since", help="Only events at or after this date/time (ISO-8601).")
@click.option("--until", help="Only events at or before this date/time (ISO-8601).")
@click.option("--min-severity", type=_SEVERITY_CHOICE, default=None,
              help="Only rules at or above this severity.")
@click.option("--format", "fmt", type=click.Choice(("table", "json", "ndjson", "csv", "sarif",
                                                    "ocsf")),
              default="table", show_default=True, help="Output format.")
@click.option("--output", "-o", default=None, help="Write to FILE instead of stdout.")
@click.option("--fail-on", type=_SEVERITY_CHOICE, default=None,
              help="Exit 1 when a finding at or above this severity exists.")
@click.option("--baseline-days", type=int, default=None,
              help="History behavioural rules compare against [default: each rule's own].")
@click.option("--param", "params", multiple=True, metavar="RULE_ID.NAME=VALUE",
              help="Override one rule parameter (repeatable); see `trailscan rules show`.")
@handle_errors
def detect(lake: str | None, rules_dir: str | None, rule_ids: tuple[str, ...],
           tags: tuple[str, ...], since: str | None, until: str | None,
           min_severity: str | None, fmt: str, output: str | None, fail_on: str | None,
           baseline_days: int | None, params: tuple[str, ...]) -> None:
    """Run the detection rules over the lake; findings per rule, account and principal."""
    from .detections import SEVERITIES, load_rules, run_rules, select_rules
    from .findings import export
    from .rule_params import apply_overrides, parse_overrides
    from .sources import parse_time

    rules = load_rules(rules_dir)
    selected = apply_overrides(select_rules(rules, rule_ids, tags, min_severity),
                               parse_overrides(params), baseline_days)
    full = not (rules_dir or rule_ids or tags or since or until or min_severity
                or baseline_days or params)
    findings = run_rules(lake, selected, since=parse_time(since) if since is not None else None,
                         until=parse_time(until, end=True) if until is not None else None,
                         store=full)
    export(findings, selected, fmt, output)
    click.echo(f"{findings.num_rows} findings from {len(selected)} rules", err=True)
    if fail_on is not None:
        floor = SEVERITIES.index(fail_on)
        if any(SEVERITIES.index(s) >= floor for s in findings.column("severity").to_pylist()):
            sys.exit(EXIT_FAILURE)


@cli.group()
def rules() -> None:
    """List, show, test and lint the detection rules (queries/<id>/)."""


@rules.command("list")
@rules_dir_option
@output_options
@handle_errors
def rules_list(rules_dir: str | None, fmt: str, output: str | None) -> None:
    """List the rules: id, severity, title, tactics, techniques, tags."""
    import pyarrow as pa

    from .detections import load_rules

    rows = [{"id": r.id, "severity": r.severity, "title": r.title,
             "tactics": ",".join(r.tactics), "techniques": ",".join(r.techniques),
             "tags": ",".join(r.tags)} for r in load_rules(rules_dir)]
    names = ("id", "severity", "title", "tactics", "techniques", "tags")
    emit(pa.table({n: pa.array([row[n] for row in rows], pa.string()) for n in names}),
         fmt, output)


@rules.command("show")
@click.argument("rule_id")
@rules_dir_option
@handle_errors
def rules_show(rule_id: str, rules_dir: str | None) -> None:
    """Print one rule: its metadata (rule.toml) and its SQL."""
    from .detections import load_rules, select_rules

    (rule,) = select_rules(load_rules(rules_dir), (rule_id,))
    click.echo((rule.path / "rule.toml").read_text().rstrip())
    click.echo("\n-- rule.sql\n" + rule.sql.rstrip())


@rules.command("test")
@click.option("--rule", "rule_ids", multiple=True, help="Only this rule id (repeatable).")
@rules_dir_option
@handle_errors
def rules_test(rule_ids: tuple[str, ...], rules_dir: str | None) -> None:
    """Run each rule on its match/nomatch events (real ingest, real SQL); exit 1 on a failure."""
    from .detections import load_rules, select_rules, test_rule

    failed = 0
    for rule in select_rules(load_rules(rules_dir), rule_ids):
        errors = test_rule(rule)
        failed += bool(errors)
        click.echo(f"{'FAIL' if errors else 'PASS'} {rule.id}")
        for error in errors:
            click.echo(f"  {error}")
    sys.exit(EXIT_FAILURE if failed else EXIT_OK)


@rules.command("export")
@click.option("--dialect", type=click.Choice(("spark", "trino", "athena", "duckdb")),
              required=True, help="Engine to write SQL for.")
@click.option("--output", "-o", type=click.Path(file_okay=False), default=None,
              help="Write one <rule id>.sql per rule into this directory [default: all to "
                   "stdout].")
@click.option("--rule", "rule_ids", multiple=True, help="Only this rule id (repeatable).")
@rules_dir_option
@click.option("--baseline-days", type=int, default=None,
              help="History behavioural rules compare against [default: each rule's own].")
@click.option("--param", "params", multiple=True, metavar="RULE_ID.NAME=VALUE",
              help="Override one rule parameter (repeatable), written into the SQL.")
@handle_errors
def rules_export(dialect: str, output: str | None, rule_ids: tuple[str, ...],
                 rules_dir: str | None, baseline_days: int | None,
                 params: tuple[str, ...]) -> None:
    """Write the rules as SQL for Spark, Trino, Athena or DuckDB (exit 1 if one cannot be)."""
    from .detections import load_rules, select_rules
    from .export import as_script, export_rules, write_exports
    from .rule_params import apply_overrides, parse_overrides

    rules = apply_overrides(select_rules(load_rules(rules_dir), rule_ids),
                            parse_overrides(params), baseline_days)
    exported = export_rules(rules, dialect)
    if output is not None:
        write_exports(exported, output)
    else:
        click.echo(as_script(exported), nl=False)
    failed = [item for item in exported if not item.ok]
    for item in failed:
        click.echo(f"not exported: {item.rule.id}: {terminal_line(item.reason or '')}", err=True)
    click.echo(f"{len(exported) - len(failed)} rules exported for {dialect}"
               f"{f' to {output}' if output else ''}, {len(failed)} not expressible", err=True)
    sys.exit(EXIT_FAILURE if failed else EXIT_OK)


@rules.command("lint")
@rules_dir_option
@handle_errors
def rules_lint(rules_dir: str | None) -> None:
    """Check every rule (schema, id, SQL, test-event files); all problems in one pass."""
    from .detections import lint_rules, rule_dirs

    errors = lint_rules(rules_dir)
    for error in errors:
        click.echo(error, err=True)
    click.echo(f"{len(rule_dirs(rules_dir))} rules, {len(errors)} problems", err=True)
    sys.exit(EXIT_FAILURE if errors else EXIT_OK)


def main() -> None:
    cli(prog_name="trailscan")


if __name__ == "__main__":
    main()
